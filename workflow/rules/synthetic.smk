# Paper Section 5 / Figure 1: the synthetic online, stochastic and Theorem 1 problems.
# One job per problem x optimizer runs every seed (each run takes well under a second, so
# process start-up would otherwise dominate); each seed writes its own folder.


rule synthetic_run:
    output:
        metrics=expand(
            "results/runs/{{task}}/{{optimizer}}/{seed}/metrics.csv", seed=SEEDS
        ),
        runs=expand("results/runs/{{task}}/{{optimizer}}/{seed}/run.json", seed=SEEDS),
    log:
        "results/logs/synthetic/{task}/{optimizer}.log",
    benchmark:
        "results/benchmarks/synthetic/{task}/{optimizer}.tsv"
    wildcard_constraints:
        task="|".join(SYNTHETIC_TASKS) or "no_synthetic_task",
    group:
        "synthetic"
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: task_settings(wc.task),
        seeds=" ".join(map(str, SEEDS)),
    shell:
        "amsgrad-repro synthetic --task {wildcards.task} --optimizer {wildcards.optimizer}"
        " --seeds {params.seeds} --settings {params.settings} --out-root results/runs"
        " > {log} 2>&1"


rule figure1:
    input:
        aggregates=expand("results/aggregates/{task}.csv", task=SYNTHETIC_TASKS),
    output:
        png=report(
            "results/figures/figure1.png",
            caption="../report/figure1.rst",
            category="Synthetic problems",
        ),
        pdf="results/figures/figure1.pdf",
    log:
        "results/logs/figure1.log",
    benchmark:
        "results/benchmarks/figure1.tsv"
    conda:
        "../../envs/amsgrad.yaml"
    params:
        aggregates=" ".join(
            f"--aggregate {task} results/aggregates/{task}.csv"
            for task in SYNTHETIC_TASKS
        ),
        settings=shlex.quote(
            json.dumps({task: SETTINGS["tasks"][task] for task in SYNTHETIC_TASKS})
        ),
        seeds=len(SEEDS),
    shell:
        "amsgrad-repro figure1 {params.aggregates} --settings {params.settings}"
        " --seeds {params.seeds} --out {output.png} {output.pdf} > {log} 2>&1"
