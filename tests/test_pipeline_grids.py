"""The smoke grids end to end through Snakemake: one job per grid, its table, figure,
cell summary, report section, and the claims that read the tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.pipeline import copy_run, run_snakemake, snakemake_env

SMOKE = ("--config", "scale=smoke")
# Every test here runs Snakemake or reads what it ran.
pytestmark = pytest.mark.slow


def grid_names(workdir) -> list[str]:
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    return list(config["grids"])


def grid_targets(workdir) -> list[str]:
    names = grid_names(workdir)
    return [f"results/grids/{g}/table.csv" for g in names] + [
        f"results/figures/grid_{g}.{ext}" for g in names for ext in ("png", "pdf")
    ]


@pytest.fixture(scope="module")
def smoke_grids(smoke_pipeline, tmp_path_factory):
    """The session's smoke pipeline (tests/conftest.py: its grids are the smoke preset's),
    copied: the report below is written into it."""
    workdir = copy_run(smoke_pipeline, tmp_path_factory.mktemp("grids") / "wf")
    targets = grid_targets(workdir)
    # As `make report` runs it: no --cores (the grid job's threads are all the cores).
    report = [sys.executable, "-m", "snakemake", "--report", "results/grids_report.html"]
    subprocess.run(
        [*report, *targets, *SMOKE], cwd=workdir, env=snakemake_env(), check=True, timeout=600
    )
    return workdir


def test_one_job_per_grid_writes_its_table(smoke_grids):
    from amsgrad_repro.config import load
    from amsgrad_repro.synthetic.grid_spec import check_grids

    specs = check_grids(load(smoke_grids / "config.yaml", {"scale": "smoke"}))
    benchmarks = sorted(p.stem for p in (smoke_grids / "results/benchmarks/grids").glob("*.tsv"))
    assert benchmarks == sorted([*specs, *(f"{g}_figure" for g in specs)])
    for name, spec in specs.items():
        folder = smoke_grids / "results/grids" / name
        table = pd.read_csv(folder / "table.csv")
        assert len(table) == spec.run_count()
        assert (table["status"] == "completed").all()
        assert {"final_x", "final_avg_regret", "hparams", "seed", *spec.axis_names} <= set(
            table.columns
        )
        assert any(c.startswith("x_t") for c in table.columns)
        record = json.loads((folder / "grid.json").read_text())
        assert record["timing"]["runs"] == spec.run_count()
        assert record["timing"]["threads"] >= 1 and "versions" in record
        cells = pd.read_csv(folder / "cells.csv")
        assert len(cells) == len(spec.cells()) * len(spec.problems) * len(spec.optimizers)
        for ext in ("png", "pdf"):
            assert (smoke_grids / f"results/figures/grid_{name}.{ext}").stat().st_size > 10_000


def test_report_has_the_section_with_captions(smoke_grids):
    report = (smoke_grids / "results/grids_report.html").read_text()
    assert "Beyond the paper" in report
    for name in grid_names(smoke_grids):
        assert f"grid_{name}.png" in report
    for words in ("ADOPT", "Zhang et al.", "Theorem 1", "Paper's claim", "Measured"):
        assert words in report, words


def test_nothing_reruns_and_the_claims_read_the_tables(smoke_grids):
    dry = run_snakemake(smoke_grids, "-n", *grid_targets(smoke_grids), *SMOKE)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    from amsgrad_repro.analysis.claims import evaluate_claims
    from amsgrad_repro.analysis.tables import load_claims, load_grids
    from amsgrad_repro.config import load
    from amsgrad_repro.summaries.finals import FINALS_COLUMNS

    settings = load(smoke_grids / "config.yaml", {"scale": "smoke"})
    tables = [smoke_grids / f"results/grids/{g}/table.csv" for g in grid_names(smoke_grids)]
    claims = load_claims(smoke_grids / "workflow/claims.yaml")
    rows = evaluate_claims(
        claims, pd.DataFrame(columns=FINALS_COLUMNS), grids=load_grids(tables, settings)
    )
    about_grids = rows[rows["task"].isin(grid_names(smoke_grids))]
    assert len(about_grids) >= 7
    assert (about_grids["verdict"] != "not run").all()
