# Aggregation shared by every task: all seeds' metrics.csv -> mean, median and 95%
# bootstrap interval per optimizer, step and metric.


rule aggregate:
    input:
        lambda wc: runs_of(wc.task),
    output:
        "results/aggregates/{task}.csv",
    log:
        "results/logs/aggregate/{task}.log",
    benchmark:
        "results/benchmarks/aggregate/{task}.tsv"
    conda:
        "../../envs/amsgrad.yaml"
    shell:
        "amsgrad-repro aggregate --out {output} {input} > {log} 2>&1"
