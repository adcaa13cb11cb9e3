"""The cross-task summary (``analysis.cross_task``) on constructed runs: one cell per task ×
optimizer against the task's baseline, judged with the task's first ``compare`` claim; a
plug-in's name appears like a built-in's; a task without a compare claim shows its effect
with "no margin declared"; the table, the PNG/PDF and the inline SVG are written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from amsgrad_repro.analysis.cross_task import NO_MARGIN, NO_PAIRS, cross_task_table
from amsgrad_repro.analysis.verdicts import NO_DIFFERENCE, TOO_FEW_SEEDS, better
from amsgrad_repro.cli import main
from tests.test_analysis_tables import write_run

SETTINGS = {
    "scale": "test",
    "analysis": {"min_seeds": 3},
    "tasks": {
        "logreg": {"kind": "classifier", "optimizers": ["adam", "amsgrad", "my-plugin"]},
        "mlp": {"kind": "classifier", "optimizers": ["adam", "amsgrad"]},
    },
}
COMPARE = {"type": "compare", "candidate": "amsgrad", "baseline": "adam", "margin": 0.005}
CLAIMS = [
    {"id": "paired_one", "task": "logreg", "metric": "train_loss",
     "rule": {"type": "paired", "candidate": "amsgrad", "baseline": "adam", "side": "below"}},
    {"id": "open_logreg_acc", "task": "logreg", "metric": "test_accuracy", "rule": COMPARE},
    {"id": "open_logreg_loss", "task": "logreg", "metric": "test_loss",
     "rule": {**COMPARE, "margin": 0.1}},
]  # fmt: skip


def finals(values: dict[tuple[str, str], list[float]], metric="test_accuracy") -> pd.DataFrame:
    """Finals rows: ``{(task, optimizer): per-seed values}`` of one metric."""
    rows = [
        {"task": task, "optimizer": opt, "seed": seed, "steps": 10.0, "status": "completed",
         "statistic": "final", "metric": metric, "value": value}
        for (task, opt), seeds in values.items()
        for seed, value in enumerate(seeds)
    ]  # fmt: skip
    return pd.DataFrame(rows)


ADAM = [0.80, 0.82, 0.84, 0.81, 0.83]


def test_each_task_s_first_compare_claim_judges_every_optimizer_it_ran():
    frame = finals(
        {
            ("logreg", "adam"): ADAM,
            ("logreg", "amsgrad"): [a + 0.001 * (i % 2) for i, a in enumerate(ADAM)],
            ("logreg", "my-plugin"): [a + 0.05 + 0.001 * i for i, a in enumerate(ADAM)],
            ("mlp", "adam"): ADAM[:2],
            ("mlp", "amsgrad"): ADAM[:2],
        }
    )
    table = cross_task_table(frame, CLAIMS, SETTINGS, min_seeds=3)
    cells = {(r.task, r.optimizer): r for r in table.itertuples(index=False)}
    assert list(cells) == [("logreg", "amsgrad"), ("logreg", "my-plugin"), ("mlp", "amsgrad")]
    amsgrad, plugin = cells["logreg", "amsgrad"], cells["logreg", "my-plugin"]
    assert amsgrad.metric == "test_accuracy" and amsgrad.claim == "open_logreg_acc"
    assert amsgrad.verdict == NO_DIFFERENCE and amsgrad.margin == 0.005
    assert plugin.verdict == better("my-plugin") and plugin.lo > 0.005
    assert plugin.estimate == pytest.approx(0.052, abs=1e-12)  # 0.05 + 0.001·mean(0..4)
    # mlp has no compare claim: the kind's default metric (test_loss) is not in these
    # finals, so the cell says so; nothing is decided without a margin.
    assert cells["mlp", "amsgrad"].verdict == "not run"
    mlp = cross_task_table(finals({("mlp", "adam"): ADAM, ("mlp", "amsgrad"): ADAM}, "test_loss"),
                           CLAIMS, SETTINGS, min_seeds=3)  # fmt: skip
    assert mlp.iloc[0]["verdict"] == NO_MARGIN and np.isnan(mlp.iloc[0]["margin"])
    assert mlp.iloc[0]["estimate"] == 0.0 and mlp.iloc[0]["n_seeds"] == 5


def test_runs_of_other_lengths_are_not_paired():
    frame = finals({("logreg", "adam"): ADAM, ("logreg", "amsgrad"): ADAM})
    frame.loc[frame["optimizer"] == "amsgrad", "steps"] = 5.0
    (row,) = cross_task_table(frame, CLAIMS, SETTINGS, min_seeds=3).itertuples(index=False)
    assert row.verdict == NO_PAIRS and row.n_seeds == 0


def test_too_few_seeds_in_a_cell():
    frame = finals({("logreg", "adam"): ADAM[:2], ("logreg", "amsgrad"): [0.9, 0.95]})
    (row,) = cross_task_table(frame, CLAIMS, SETTINGS, min_seeds=3).itertuples(index=False)
    assert row.verdict == TOO_FEW_SEEDS and row.n_seeds == 2 and row.estimate > 0


def test_the_command_writes_the_table_and_the_figures(tmp_path, repo_root):
    runs = []
    for seed in range(3):
        runs.append(write_run(tmp_path, "logreg", "adam", seed, [1.0, 0.6, 0.5 + 0.01 * seed]))
        runs.append(write_run(tmp_path, "logreg", "amsgrad", seed, [1.0, 0.5, 0.3]))
        runs.append(write_run(tmp_path, "logreg", "my-plugin", seed, [1.0, 0.6, 0.5]))
    settings = {**SETTINGS, "scale": "smoke"}
    table = tmp_path / "tables" / "cross_task.csv"
    figures = [tmp_path / "figures" / f"cross_task.{ext}" for ext in ("png", "pdf", "svg")]
    argv = ["cross-task", "--runs", *map(str, runs), "--claims", str(repo_root / CLAIMS_FILE)]
    argv += ["--settings", json.dumps(settings), "--table", str(table), "--out", *map(str, figures)]
    assert main(argv) == 0
    frame = pd.read_csv(table)
    # The shipped claims' first compare claim of logreg: final test accuracy, ±0.005.
    assert list(frame["optimizer"]) == ["amsgrad", "my-plugin"]
    assert (frame["metric"] == "test_accuracy").all() and (frame["margin"] == 0.005).all()
    # accuracy = 1 - loss/3: AMSGrad's 0.3 against Adam's 0.50-0.52 is +0.0733 accuracy
    assert frame.iloc[0]["verdict"] == better("amsgrad")
    assert all(path.stat().st_size > 0 for path in figures)
    assert figures[2].read_text().startswith("<svg")
    assert not list(table.parent.glob(".*.tmp"))  # written atomically, nothing left over


CLAIMS_FILE = "workflow/claims.yaml"


PAPER_TASKS = ("synthetic_online", "synthetic_stochastic", "synthetic_theorem1", "logreg", "mlp",
               "cifarnet", "vae_celeba", "vae_mnist")  # fmt: skip


def test_the_shipped_claims_give_every_paper_task_a_headline(repo_root):
    """The paper's tasks each have a compare claim, so their columns have a margin."""
    claims = yaml.safe_load((repo_root / CLAIMS_FILE).read_text())
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    compared = {c["task"] for c in claims if c["rule"]["type"] == "compare"}
    assert set(PAPER_TASKS) <= set(config["tasks"]) and set(PAPER_TASKS) <= compared
