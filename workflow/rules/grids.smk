# Beyond the paper: grids of synthetic runs (config.yaml grids:, docs/grids.md): ADOPT's
# problem, the (beta1, beta2) map, Theorem 1's map. A grid is thousands of short runs, so a
# job is a whole grid: every cell x problem x optimizer x seed in one call of the compiled
# kernel, in parallel over all the job's threads, writing one table. Its figure and
# per-cell summary come from that table; the claims (rule analyse) read it too.


rule grid_run:
    output:
        table=layout.GRID_TABLE.pattern,
        record=layout.GRID_RECORD.pattern,
    log:
        log_path("grids/{grid}"),
    benchmark:
        benchmark_path("grids/{grid}")
    wildcard_constraints:
        grid="|".join(GRIDS) or "no_grid",
    conda:
        "../../envs/amsgrad.yaml"
    # All of them (a callable, so that `snakemake --report` needs no --cores).
    threads: lambda wc: workflow.cores
    params:
        settings=lambda wc: grid_settings(wc.grid),
        seeds=" ".join(map(str, SEEDS)),
        plugins=lambda wc: grid_plugins(wc.grid),
        out_dir=lambda wc: layout.GRID_DIR.build(grid=wc.grid),
    shell:
        "amsgrad-repro grid --name {wildcards.grid} --settings {params.settings}"
        " --seeds {params.seeds} --plugins {params.plugins}"
        " --out-dir {params.out_dir} --threads {threads} > {log} 2>&1"


rule grid_figure:
    input:
        table=layout.GRID_TABLE.pattern,
    output:
        png=report(
            layout.figure("grid_{grid}", "png"),
            caption="../report/grids.rst",
            category="Beyond the paper",
            labels={"grid": "{grid}"},
        ),
        pdf=layout.figure("grid_{grid}", "pdf"),
        cells=layout.GRID_CELLS.pattern,
    log:
        log_path("grids/{grid}_figure"),
    benchmark:
        benchmark_path("grids/{grid}_figure")
    wildcard_constraints:
        grid="|".join(GRIDS) or "no_grid",
    conda:
        "../../envs/amsgrad.yaml"
    params:
        settings=lambda wc: grid_settings(wc.grid),
        seeds=" ".join(map(str, SEEDS)),
        plugins=lambda wc: grid_plugins(wc.grid),
    shell:
        "amsgrad-repro grid-figure --name {wildcards.grid} --settings {params.settings}"
        " --seeds {params.seeds} --plugins {params.plugins} --table {input.table}"
        " --cells-out {output.cells} --out {output.png} {output.pdf} > {log} 2>&1"
