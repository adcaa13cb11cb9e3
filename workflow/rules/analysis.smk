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
            "results/tables/claims.html",
            caption="../report/claims.rst",
            category="Claims",
        ),
        statistics=report(
            "results/tables/statistics.html",
            caption="../report/statistics.rst",
            # Not "Statistics": the report has its own section of that name (run times).
            category="Tables across seeds",
        ),
        provenance=report(
            "results/tables/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
        settings=report(
            "results/tables/settings.html",
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
    shell:
        "amsgrad-repro analyse --runs {input.runs} --aggregates {input.aggregates}"
        " --sensitivity {input.sensitivity} --grids {input.grids} --claims {input.claims}"
        " --settings {params.settings} --out-dir results/tables > {log} 2>&1"
