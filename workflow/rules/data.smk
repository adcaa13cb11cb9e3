# Datasets: raw files through DVC (pull, or fetch + dvc add), verified, converted once into
# data/cache/<dataset>/ that training jobs load in milliseconds. This rule is the only
# producer of a dataset, so parallel jobs never download it twice.


rule prepare_dataset:
    output:
        "data/cache/{dataset}/meta.json",
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(SETTINGS.get("datasets", {})) or "no_dataset",
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: dataset_settings(wc.dataset),
    shell:
        "amsgrad-repro prepare-data --dataset {wildcards.dataset} --settings {params.settings}"
        " --out data/cache/{wildcards.dataset} > {log} 2>&1"
