# Aggregation shared by every task: all seeds' metrics.csv -> mean, median and 95%
# interval per optimizer, step and metric.


rule aggregate:
    input:
        metrics=lambda wc: runs_of(wc.task),
        # Read beside each metrics.csv: a diverged run's stopping step.
        runs=lambda wc: runs_of(wc.task, "run.json"),
    output:
        layout.AGGREGATE.pattern,
    log:
        log_path("aggregate/{task}"),
    benchmark:
        benchmark_path("aggregate/{task}")
    conda:
        "../../envs/amsgrad.yaml"
    shell:
        "amsgrad-repro aggregate --out {output} {input.metrics} > {log} 2>&1"
