# Datasets: raw files through DVC (pull, or fetch + dvc add), verified, converted once into
# data/cache/<dataset>.pt that training jobs memory-map in milliseconds. This rule is the only
# producer of a dataset's cache, so parallel jobs never download it twice; `prepare-data`
# also holds a per-dataset lock and serialises its dvc calls. Training rules name their
# input with dataset_cache(name) (workflow/rules/common.smk).


rule prepare_dataset:
    output:
        layout.DATASET_CACHE.pattern,
    log:
        log_path("data/{dataset}"),
    benchmark:
        benchmark_path("data/{dataset}")
    wildcard_constraints:
        dataset="|".join(SETTINGS.get("datasets", {})) or "no_dataset",
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: dataset_settings(wc.dataset),
    shell:
        "amsgrad-repro prepare-data --dataset {wildcards.dataset} --settings {params.settings}"
        " --out {output} > {log} 2>&1"
