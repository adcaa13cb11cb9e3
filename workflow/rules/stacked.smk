# Stacked jobs (src/amsgrad_repro/train/jobs.py): a stacked task's seeds of one optimizer,
# or a tuning grid's points x seeds, train as one model in one job. One rule per job, named
# by it; their outputs have no wildcards, so Snakemake prefers them over rule train and
# tune_run for the same files.


for job in STACKED_JOBS:

    rule:
        name:
            job.name
        input:
            cache=training_cache(job.task),
            hparams=[] if job.tuning else tuning_selection(job.task, job.optimizer),
        output:
            metrics=job.outputs("metrics.csv"),
            runs=job.outputs("run.json"),
            checkpoints=job.outputs("checkpoint.pt"),
        log:
            job.log,
        benchmark:
            job.benchmark
        conda:
            "../../envs/amsgrad.yaml"
        threads: task_resource(job.task, "cpus", 1)
        resources:
            gpu=task_resource(job.task, "gpus", 0),
            gpu_model=task_resource(job.task, "gpu_model") or "",
            mem_mb=task_resource(job.task, "mem_mb", 2000),
            runtime=task_resource(job.task, "runtime", 60),
        params:
            task=job.task,
            optimizer=job.optimizer,
            members=stacked_members(job),
            settings=quoted(job.settings),
            plugins=job_plugins(job.optimizer),
            hparams_file="" if job.tuning else hparams_file_arg(job.task, job.optimizer),
            checkpoints=job.checkpoint_dir,
            device=SETTINGS["device"],
        shell:
            "amsgrad-repro train-stacked --task {params.task} --optimizer {params.optimizer}"
            " --members {params.members} --settings {params.settings} {params.hparams_file}"
            " --plugins {params.plugins} --dataset-cache {input.cache}"
            " --checkpoint-dir {params.checkpoints} --device {params.device}"
            " --threads {threads} --progress off > {log} 2>&1"
