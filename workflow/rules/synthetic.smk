# Paper Section 5 / Figure 1: the synthetic online, stochastic and Theorem 1 problems.
# One job per problem x optimizer runs every seed (each run takes well under a second, so
# process start-up would otherwise dominate): the compiled kernel runs the seeds in parallel
# on the job's threads; plug-ins and torch.optim classes without a native twin take the
# generic tensor path (all seeds in one tensor, tens of microseconds a step). Each seed
# writes its own folder.


rule synthetic_run:
    output:
        metrics=expand(f"{RUN}/metrics.csv", seed=SEEDS, allow_missing=True),
        runs=expand(f"{RUN}/run.json", seed=SEEDS, allow_missing=True),
    log:
        log_path(layout.SYNTHETIC_JOB),
    benchmark:
        benchmark_path(layout.SYNTHETIC_JOB)
    wildcard_constraints:
        task="|".join(SYNTHETIC_TASKS) or "no_synthetic_task",
    group:
        "synthetic"
    conda:
        "../../envs/amsgrad.yaml"
    # The compiled kernel runs the seeds in parallel; the generic path is one thread.
    threads: lambda wc: workflow.cores if compiled(wc.task, wc.optimizer) else 1
    params:
        settings=lambda wc: job_settings(wc.task, wc.optimizer),
        plugins=lambda wc: job_plugins(wc.optimizer),
        seeds=" ".join(map(str, SEEDS)),
        # The runs' root (layout.RUNS; each run is RUN_IN_RUNS below it).
        out_root=lambda wc, output: layout.RUNS.pattern,
    shell:
        "amsgrad-repro synthetic --task {wildcards.task} --optimizer {wildcards.optimizer}"
        " --seeds {params.seeds} --settings {params.settings} --plugins {params.plugins}"
        " --out-root {params.out_root} --threads {threads} > {log} 2>&1"


rule figure1:
    input:
        aggregates=expand(layout.AGGREGATE.pattern, task=SYNTHETIC_TASKS),
        runs=[path for task in SYNTHETIC_TASKS for path in runs_of(task, "run.json")],
    output:
        png=report(
            layout.figure("figure1", "png"),
            caption="../report/figure1.rst",
            category="Synthetic problems",
        ),
        pdf=layout.figure("figure1", "pdf"),
    log:
        log_path("figure1"),
    benchmark:
        benchmark_path("figure1")
    conda:
        "../../envs/amsgrad.yaml"
    params:
        aggregates=" ".join(
            f"--aggregate {task} {layout.AGGREGATE.build(task=task)}"
            for task in SYNTHETIC_TASKS
        ),
    shell:
        "amsgrad-repro figure1 {params.aggregates} --runs {input.runs}"
        " --out {output.png} {output.pdf} > {log} 2>&1"
