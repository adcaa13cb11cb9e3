"""A smoke-preset run of the whole pipeline, tuning stage included, renders a
self-contained HTML report with every figure, the claims table, the statistics, settings
and provenance pages."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml

from amsgrad_repro.analysis.cross_task import NO_PAIRS
from amsgrad_repro.analysis.verdicts import TOO_FEW_SEEDS, is_verdict

# Every test here reads the session's smoke pipeline (tests/conftest.py: smoke_pipeline, the
# shipped smoke preset with tune=True, and its report).
pytestmark = pytest.mark.slow


def test_report_contains_every_figure_and_the_claims_table(smoke_pipeline):
    report = (smoke_pipeline / "results/report.html").read_text()
    figures = sorted(p.name for p in (smoke_pipeline / "results/figures").glob("*.png"))
    expected = {"figure1.png", "logreg.png", "mlp.png", "sensitivity_logreg.png", "cross_task.png"}
    assert expected <= set(figures), figures
    for name in figures:
        assert name in report, f"{name} missing from the report"
    for name in ("claims.html", "statistics.html", "provenance.html", "settings.html"):
        assert name in report
    assert "Verdicts." in report  # the workflow description
    # The tables' category does not collide with Snakemake's own "Statistics" section
    # (docutils printed "Duplicate explicit target name" warnings on the front page).
    assert "System Message" not in report and "Duplicate explicit target name" not in report
    # Self-contained: no links to files next to it.
    assert not re.search(r"""src=["'](?!data:)[^"']+\.png""", report)


GRIDS = ("adopt_problem", "beta_map", "theorem1_map")


def test_claims_table_lists_every_claim_with_a_verdict(smoke_pipeline):
    claims = pd.read_csv(smoke_pipeline / "results/tables/claims.csv")
    listed = yaml.safe_load((smoke_pipeline / "workflow/claims.yaml").read_text())
    assert list(claims["id"]) == [c["id"] for c in listed]
    assert all(map(is_verdict, claims["verdict"])), set(claims["verdict"])
    # Two smoke seeds never decide a claim about runs, and every row says which setting it
    # is about. The smoke grids run 5+ seeds of ADOPT's problem (one seed of a deterministic
    # problem is exact), so their claims get verdicts, marked SHORTENED like the others.
    ran_claims = claims[claims["verdict"] != "not run"]
    on_runs = ran_claims[~ran_claims["task"].isin(GRIDS)]
    assert (on_runs["verdict"] == "too few seeds").all(), on_runs[["id", "verdict"]]
    on_grids = claims[claims["task"].isin(GRIDS)]
    assert (on_grids["verdict"] != "not run").all(), on_grids[["id", "verdict"]]
    assert (claims["scale"] == "smoke").all() and claims.loc[ran_claims.index, "shortened"].all()
    ran = claims[claims["task"].isin(["synthetic_online", "logreg", "mlp"])]
    assert (ran["verdict"] != "not run").all(), ran[["id", "verdict"]]
    not_run = claims[claims["task"].isin(["cifarnet", "vae_celeba"])]
    assert (not_run["verdict"] == "not run").all()
    html = (smoke_pipeline / "results/tables/claims.html").read_text()
    assert all(claim_id in html for claim_id in claims["id"])


def test_replicated_runs_used_the_tuning_selection(smoke_pipeline):
    results = smoke_pipeline / "results"
    for optimizer in ("adam", "amsgrad"):
        selected = json.loads((results / f"tuning/logreg/{optimizer}.json").read_text())
        run = json.loads((results / f"runs/logreg/{optimizer}/0/run.json").read_text())
        assert run["hparams"]["lr"] == selected["selected"]["lr"]
        assert run["hparams"]["beta2"] == selected["selected"]["beta2"]
    untuned = json.loads((results / "runs/logreg/adamnc/0/run.json").read_text())
    assert untuned["hparams"]["lr"] == 0.01  # not in the tuning list: the configured value


def test_summary_and_tidy_tables(smoke_pipeline):
    tables = smoke_pipeline / "results/tables"
    summary = (tables / "summary.txt").read_text()
    assert "P(improvement)" in summary and "Time to target" in summary
    assert "checked at scale smoke" in summary and "A REDUCED run" in summary
    assert "[TOO FEW SEEDS] online_amsgrad_to_optimum (smoke: 20000 of 10000000 steps" in summary
    paired = pd.read_csv(tables / "paired.csv")
    assert {"logreg", "mlp", "synthetic_online"} <= set(paired["task"])
    # The smoke preset's 2e4 steps leave the online runs moving: counted, not dropped.
    online = paired[paired["task"] == "synthetic_online"]
    assert ((online["n"] + online["unsettled"]) == 2).all(), online
    assert set(paired["statistic"]) == {"final", "best"}
    finals = pd.read_csv(tables / "finals.csv")
    assert "hparam_sensitivity" in set(finals["metric"])


def test_the_cross_task_summary_covers_every_task_and_optimizer_that_ran(smoke_pipeline):
    """One cell per task that ran × each optimizer it ran besides the baseline (the plug-in
    lion like a built-in), on the metric of the task's first compare claim; two smoke seeds
    decide none; the front page of the report inlines the heatmap."""
    cells = pd.read_csv(smoke_pipeline / "results/tables/cross_task.csv")
    runs = smoke_pipeline / "results/runs"
    ran = {p.name: {o.name for o in p.iterdir()} for p in runs.iterdir()}
    assert set(cells["task"]) == set(ran)
    for task, optimizers in ran.items():
        mine = cells[cells["task"] == task]
        assert set(mine["optimizer"]) == optimizers - {"adam"}, task
        assert (mine["baseline"] == "adam").all() and mine["claim"].str.startswith("open_").all()
    assert "lion" in set(cells.loc[cells["task"] == "logreg", "optimizer"])
    logreg = cells[cells["task"] == "logreg"]
    assert (logreg["metric"] == "test_accuracy").all() and (logreg["margin"] == 0.005).all()
    assert set(cells.loc[cells["task"] == "vae_mnist", "metric"]) == {"test_loss"}
    # (a plug-in's generic run of a synthetic problem may stop earlier: then no pairs)
    synthetic = cells["task"].str.startswith("synthetic_")
    assert (cells.loc[~synthetic, "verdict"] == TOO_FEW_SEEDS).all(), cells
    assert set(cells.loc[synthetic, "verdict"]) <= {TOO_FEW_SEEDS, NO_PAIRS}
    assert (cells["n_seeds"] <= 2).all() and cells["estimate"].notna().any()
    report = (smoke_pipeline / "results/report.html").read_text()
    assert "The answer, across tasks." in report and "The answer" in report
    svg = (smoke_pipeline / "results/figures/cross_task.svg").read_text()
    assert svg.startswith("<svg") and "cross_task.png" in report
    assert "too few seeds" in svg  # the cells' verdicts, as text
