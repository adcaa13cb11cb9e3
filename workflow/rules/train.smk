# Paper Section 5, Figure 2 (and the report's VAE): the neural tasks. One job per task x
# optimizer x seed; each job resumes from results/checkpoints/<task>/<optimizer>/<seed>/
# (outside the declared outputs) after a kill, a failure or a SLURM preemption.


# One rule per kind of run folder (common.smk's TRAIN_RULES): rule train, and train_<kind>
# for a kind whose runs also write samples (kinds.SAMPLES), the same job declaring them.
for _rule, _tasks in TRAIN_RULES.items():

    rule:
        name:
            _rule
        input:
            cache=lambda wc: training_cache(wc.task),
            # With tune: true, the tuning stage's alpha/beta2 for this optimizer (tune.smk).
            hparams=lambda wc: tuning_selection(wc.task, wc.optimizer),
        output:
            **run_outputs(_rule),
        log:
            log_path(layout.TRAIN_JOB),
        benchmark:
            benchmark_path(layout.TRAIN_JOB)
        wildcard_constraints:
            task=task_pattern(_tasks),
        conda:
            "../../envs/amsgrad.yaml"
        threads: lambda wc: task_resource(wc.task, "cpus", 1)
        resources:
            # The SLURM plugin turns gpu (and gpu_model) into --gpus=[model:]N.
            gpu=lambda wc: task_resource(wc.task, "gpus", 0),
            gpu_model=lambda wc: task_resource(wc.task, "gpu_model") or "",
            mem_mb=lambda wc: task_resource(wc.task, "mem_mb", 2000),
            runtime=lambda wc: task_resource(wc.task, "runtime", 60),
        params:
            # Only this job's own resolved settings: another optimizer's change reruns
            # nothing here (amsgrad_repro.run_settings).
            settings=lambda wc: job_settings(wc.task, wc.optimizer),
            out=lambda wc: run_dir(wc.task, wc.optimizer, wc.seed),
            checkpoints=layout.RUN_CHECKPOINTS.pattern,
            device=SETTINGS["device"],
            plugins=lambda wc: job_plugins(wc.optimizer),
            hparams_file=lambda wc: hparams_file_arg(wc.task, wc.optimizer),
        shell:
            "amsgrad-repro train --task {wildcards.task} --optimizer {wildcards.optimizer}"
            " --seed {wildcards.seed} --settings {params.settings} {params.hparams_file}"
            " --plugins {params.plugins} --dataset-cache {input.cache} --out {params.out}"
            " --checkpoint-dir {params.checkpoints} --device {params.device}"
            " --threads {threads} --progress off > {log} 2>&1"


rule train_figure:
    input:
        aggregate=layout.AGGREGATE.pattern,
        runs=lambda wc: runs_of(wc.task, "run.json"),
    output:
        png=report(
            layout.figure("{task}", "png"),
            caption="../report/training.rst",
            category="Training tasks",
        ),
        pdf=layout.figure("{task}", "pdf"),
    log:
        log_path("figures/{task}"),
    benchmark:
        benchmark_path("figures/{task}")
    wildcard_constraints:
        task=task_pattern(TRAINING_TASKS),
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: task_settings(wc.task),
        log_y=lambda wc: (
            "--log-y"
            if SETTINGS["tasks"][wc.task].get("figure", {}).get("log_y")
            else ""
        ),
    shell:
        "amsgrad-repro train-figure --task {wildcards.task} --aggregate {input.aggregate}"
        " --runs {input.runs} --settings {params.settings} {params.log_y}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


# The samples of a task whose kind writes them (kinds.SAMPLES) side by side: the first seed
# of each optimizer (same seed, same test images, prompt and draws), marked like the curves
# when the run is reduced.
rule samples_figure:
    input:
        runs=lambda wc: runs_of(wc.task, "run.json"),
        samples=lambda wc: runs_of(wc.task, samples_of(wc.task).file),
    output:
        png=report(
            layout.figure("{task}_samples", "png"),
            caption="../report/samples.rst",
            category="Training tasks",
        ),
        pdf=layout.figure("{task}_samples", "pdf"),
    log:
        log_path("figures/{task}_samples"),
    benchmark:
        benchmark_path("figures/{task}_samples")
    wildcard_constraints:
        task=task_pattern(SAMPLE_TASKS),
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: task_settings(wc.task),
    shell:
        "amsgrad-repro samples-figure --task {wildcards.task} --runs {input.runs}"
        " --settings {params.settings} --out {output.png} {output.pdf} > {log} 2>&1"
