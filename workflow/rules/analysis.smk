# Statistics across seeds, paired comparisons, time-to-target and the paper's claims with
# verdicts (workflow/claims.yaml, decision rule in docs/claims.md), as tidy CSVs under
# results/tables/ plus the pages the report embeds.


rule analyse:
    input:
        runs=all_run_records(),
        aggregates=all_aggregates(),
        sensitivity=sensitivity_files(),
        grids=grid_tables(),
        claims="workflow/claims.yaml",
    output:
        TABLES,
        claims=report(
            layout.TABLES.child("claims.html").pattern,
            caption="../report/claims.rst",
            category="Claims",
        ),
        statistics=report(
            layout.TABLES.child("statistics.html").pattern,
            caption="../report/statistics.rst",
            # Not "Statistics": the report has its own section of that name (run times).
            category="Tables across seeds",
        ),
        provenance=report(
            layout.TABLES.child("provenance.html").pattern,
            caption="../report/provenance.rst",
            category="Provenance",
        ),
        settings=report(
            layout.TABLES.child("settings.html").pattern,
            caption="../report/settings.rst",
            category="Provenance",
        ),
    log:
        log_path("analyse"),
    benchmark:
        benchmark_path("analyse")
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=all_settings(),
        out_dir=lambda wc, output: os.path.dirname(output.claims),
    shell:
        "amsgrad-repro analyse --runs {input.runs} --aggregates {input.aggregates}"
        " --sensitivity {input.sensitivity} --grids {input.grids} --claims {input.claims}"
        " --settings {params.settings} --out-dir {params.out_dir} > {log} 2>&1"


# The answer to the open question, on one page: every optimizer against the baseline of
# every task that ran (paired by seed, the task's first `compare` claim's metric and
# margin), as a table and a heatmap; the report's front page inlines the SVG.
rule cross_task:
    input:
        runs=all_run_records(),
        claims="workflow/claims.yaml",
    output:
        table=layout.CROSS_TASK_TABLE.pattern,
        png=report(
            layout.CROSS_TASK_FIGURES[0],
            caption="../report/cross_task.rst",
            category="The answer",
        ),
        pdf=layout.CROSS_TASK_FIGURES[1],
        svg=layout.CROSS_TASK_FIGURES[2],
    log:
        log_path("cross_task"),
    benchmark:
        benchmark_path("cross_task")
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=all_settings(),
    shell:
        "amsgrad-repro cross-task --runs {input.runs} --claims {input.claims}"
        " --settings {params.settings} --table {output.table}"
        " --out {output.png} {output.pdf} {output.svg} > {log} 2>&1"
