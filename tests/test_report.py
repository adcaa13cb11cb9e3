"""A smoke-preset run of the whole pipeline renders a self-contained HTML report with every
figure and the claims table."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.pipeline import copy_workflow, run_snakemake


@pytest.fixture(scope="module")
def smoke_pipeline(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("report"))
    run_snakemake(workdir, "--config", "scale=smoke", timeout=1800)
    run_snakemake(workdir, "--report", "results/report.html", "--config", "scale=smoke")
    return workdir


def test_report_contains_every_figure_and_the_claims_table(smoke_pipeline):
    report = (smoke_pipeline / "results/report.html").read_text()
    figures = sorted(p.name for p in (smoke_pipeline / "results/figures").glob("*.png"))
    assert "figure1.png" in figures
    for name in figures:
        assert name in report, f"{name} missing from the report"
    for name in ("claims.html", "provenance.html", "settings.html"):
        assert name in report
    # Self-contained: no links to files next to it.
    assert not re.search(r"""src=["'](?!data:)[^"']+\.png""", report)


def test_claims_table_lists_every_claim_with_a_verdict(smoke_pipeline):
    import yaml

    claims = pd.read_csv(smoke_pipeline / "results/tables/claims.csv")
    listed = yaml.safe_load((smoke_pipeline / "workflow/claims.yaml").read_text())
    assert list(claims["id"]) == [c["id"] for c in listed]
    assert set(claims["verdict"]) <= {"reproduced", "not reproduced", "inconclusive", "not run"}
    synthetic = claims[claims["task"].str.startswith("synthetic")]
    assert (synthetic["verdict"] != "not run").all()
    html = (smoke_pipeline / "results/tables/claims.html").read_text()
    assert all(claim_id in html for claim_id in claims["id"])
