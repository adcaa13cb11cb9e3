# The paper's hyper-parameter protocol (off unless `tune: true`): per task x optimizer a
# grid over alpha and beta2, and weight decay where a grid lists it (config `tuning:`), run
# on the tuning seeds, scored on the validation split; the choice goes to
# results/tuning/<task>/<optimizer>.json, which the replicated `train` jobs of that
# optimizer read (--hparams-file).


# One grid point x tuning seed: the training job with the point's settings. A stacked
# task's grid runs as stacked jobs instead (stacked.smk), which Snakemake prefers.
use rule train as tune_run with:
    input:
        cache=lambda wc: training_cache(wc.task),
    output:
        metrics=f"{TUNING_RUN}/metrics.csv",
        run=f"{TUNING_RUN}/run.json",
        checkpoint=f"{TUNING_RUN}/checkpoint.pt",
    log:
        log_path(layout.TUNE_RUN_JOB),
    benchmark:
        benchmark_path(layout.TUNE_RUN_JOB)
    wildcard_constraints:
        task="|".join(TUNED) or "no_tuned_task",
    params:
        settings=lambda wc: grid_point_settings(wc.task, wc.optimizer, wc.point),
        out=lambda wc, output: os.path.dirname(output.run),
        checkpoints=layout.TUNING_CHECKPOINTS.pattern,
        device=SETTINGS["device"],
        plugins=lambda wc: job_plugins(wc.optimizer),
        hparams_file="",


# Cheap bookkeeping: runs where Snakemake runs, never as a cluster job.
rule tune_select:
    input:
        runs=lambda wc: tuning_runs(wc.task, wc.optimizer),
    output:
        layout.SELECTION.pattern,
    log:
        log_path("tune/{task}/{optimizer}.select"),
    benchmark:
        benchmark_path("tune/{task}/{optimizer}.select")
    wildcard_constraints:
        task="|".join(TUNED) or "no_tuned_task",
    localrule: True
    conda:
        "../../envs/amsgrad.yaml"
    params:
        metric=SETTINGS.get("tuning", {}).get("metric", "val_loss"),
    shell:
        "amsgrad-repro tune-select --task {wildcards.task} --optimizer {wildcards.optimizer}"
        " --metric {params.metric} --runs {input.runs}"
        " --out {output} > {log} 2>&1"


# Cheap bookkeeping: runs where Snakemake runs, never as a cluster job.
rule sensitivity:
    input:
        runs=lambda wc: tuning_runs(wc.task),
    output:
        grid=layout.TUNING_GRID.pattern,
        sensitivity=layout.SENSITIVITY.pattern,
        png=report(
            layout.figure("sensitivity_{task}", "png"),
            caption="../report/sensitivity.rst",
            category="Hyper-parameter sensitivity",
        ),
        pdf=layout.figure("sensitivity_{task}", "pdf"),
    log:
        log_path("tune/{task}/sensitivity"),
    benchmark:
        benchmark_path("tune/{task}/sensitivity")
    wildcard_constraints:
        task="|".join(TUNED) or "no_tuned_task",
    localrule: True
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: task_settings(wc.task),
        metric=SETTINGS.get("tuning", {}).get("metric", "val_loss"),
        epochs=lambda wc: TUNED[wc.task]["epochs"],
    shell:
        "amsgrad-repro sensitivity --task {wildcards.task} --settings {params.settings}"
        " --metric {params.metric} --epochs {params.epochs} --runs {input.runs}"
        " --grid-out {output.grid} --sensitivity-out {output.sensitivity}"
        " --figure {output.png} {output.pdf} > {log} 2>&1"
