# Paper Section 5, Figure 2 (and the report's VAE): the neural tasks. One job per task x
# optimizer x seed; each job resumes from results/checkpoints/<task>/<optimizer>/<seed>/
# (outside the declared outputs) after a kill, a failure or a SLURM preemption.


rule train:
    input:
        cache=lambda wc: training_cache(wc.task),
        # With tune: true, the tuning stage's alpha/beta2 for this optimizer (tune.smk).
        hparams=lambda wc: tuning_selection(wc.task, wc.optimizer),
    output:
        metrics=f"{RUN}/metrics.csv",
        run=f"{RUN}/run.json",
        checkpoint=f"{RUN}/checkpoint.pt",
    log:
        log_path(layout.TRAIN_JOB),
    benchmark:
        benchmark_path(layout.TRAIN_JOB)
    wildcard_constraints:
        # The VAE tasks' jobs come from train_vae below (same job, one more output).
        task=task_pattern(PLAIN_TRAINING_TASKS),
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


# The VAE tasks: the same job, which also writes the run's image grid (test images over
# their reconstructions, then samples from the prior); declared so it is a target, and
# shown in the report next to the run.
use rule train as train_vae with:
    output:
        metrics=f"{RUN}/metrics.csv",
        run=f"{RUN}/run.json",
        checkpoint=f"{RUN}/checkpoint.pt",
        samples=report(
            f"{RUN}/samples.png",
            caption="../report/vae_run_samples.rst",
            category="VAE image grids",
            subcategory="{task}",
            labels={"task": "{task}", "optimizer": "{optimizer}", "seed": "{seed}"},
        ),
    wildcard_constraints:
        task=task_pattern(VAE_TASKS),


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


# The VAE tasks' image grids side by side: the first seed of each optimizer (same seed,
# same test images and prior draws), marked like the curves when the run is reduced.
rule samples_figure:
    input:
        runs=lambda wc: runs_of(wc.task, "run.json"),
        samples=lambda wc: runs_of(wc.task, "samples.png"),
    output:
        png=report(
            layout.figure("{task}_samples", "png"),
            caption="../report/vae_samples.rst",
            category="Training tasks",
        ),
        pdf=layout.figure("{task}_samples", "pdf"),
    log:
        log_path("figures/{task}_samples"),
    benchmark:
        benchmark_path("figures/{task}_samples")
    wildcard_constraints:
        task=task_pattern(VAE_TASKS),
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: task_settings(wc.task),
    shell:
        "amsgrad-repro samples-figure --task {wildcards.task} --runs {input.runs}"
        " --settings {params.settings} --out {output.png} {output.pdf} > {log} 2>&1"
