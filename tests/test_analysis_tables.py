"""The analysis command on run folders written in the results contract's format: final and
best values, paired table, time-to-target, robustness rows, provenance and settings pages,
and the plain-text summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from amsgrad_repro.cli import main
from amsgrad_repro.summaries.aggregate import aggregate_files
from amsgrad_repro.summaries.finals import best_values, load_finals

SHA = "ab" * 32


def write_run(root: Path, task: str, optimizer: str, seed: int, losses, status="completed"):
    """A training run's metrics.csv (a loss curve) and run.json, as the engine writes them."""
    folder = root / "runs" / task / optimizer / str(seed)
    folder.mkdir(parents=True)
    steps = [10 * (i + 1) for i in range(len(losses))]
    frame = pd.DataFrame(
        {
            "step": steps,
            "epoch": 0,
            "train_loss": losses,
            "test_loss": [v + 0.1 for v in losses],
            "test_accuracy": [1 - v / 3 for v in losses],
            "lr": 0.01,
            "wall_time": 1.0,
        }
    )
    frame.to_csv(folder / "metrics.csv", index=False)
    last = frame.iloc[-1]
    record = {
        "task": task,
        "optimizer": optimizer,
        "seed": seed,
        "status": status,
        "final": {k: float(last[k]) for k in ("train_loss", "test_loss", "test_accuracy", "lr")},
        "hparams": {"lr": 0.01 if optimizer == "adam" else 0.003, "beta1": 0.9, "beta2": 0.999},
        "device": "cpu",
        "dataset_sha256": SHA,
        "data": {"dataset": "fashion_mnist"},
        "git_commit": "abc123",
        "versions": {"torch": "2.14.1"},
    }
    (folder / "run.json").write_text(json.dumps(record))
    return folder / "run.json"


@pytest.fixture
def runs(tmp_path):
    """Adam plateaus at 0.5; AMSGrad dips to 0.3 then ends at 0.35 (final and best differ);
    seed 2 of Adam diverged."""
    files = []
    for seed in range(3):
        files.append(write_run(tmp_path, "logreg", "adam", seed, [1.0, 0.6, 0.5 + 0.01 * seed]))
        files.append(write_run(tmp_path, "logreg", "amsgrad", seed, [1.0, 0.3, 0.35]))
    record = json.loads(files[4].read_text())
    record["status"] = "diverged"
    files[4].write_text(json.dumps(record))
    return files


def test_best_values_are_the_lowest_loss_and_highest_accuracy(runs):
    best = best_values(runs[1].parent / "metrics.csv")
    # values read back from a CSV and a few float64 means of decimals: ≲ 10 ulps, rel=1e-12
    assert best["train_loss"] == pytest.approx(0.3, rel=1e-12)
    assert best["test_accuracy"] == pytest.approx(0.9, rel=1e-12)
    assert "lr" not in best and "step" not in best


def test_finals_have_final_and_best_rows_and_diverged_runs_are_nan(runs):
    finals = load_finals(runs)
    amsgrad = finals[(finals["optimizer"] == "amsgrad") & (finals["metric"] == "train_loss")]
    assert sorted(amsgrad["statistic"].unique()) == ["best", "final"]
    best_values = amsgrad.loc[amsgrad["statistic"] == "best", "value"].tolist()
    assert best_values == pytest.approx([0.3] * 3, rel=1e-12)  # a minimum: exact
    adam = finals[(finals["optimizer"] == "adam") & (finals["seed"] == 2)]
    assert adam["value"].isna().all() and (adam["status"] == "diverged").all()
    assert "lr" not in set(finals["metric"])


def test_analyse_writes_every_table(runs, tmp_path, repo_root):
    agg = tmp_path / "aggregates" / "logreg.csv"
    aggregate_files([r.parent / "metrics.csv" for r in runs], agg)
    sensitivity = tmp_path / "sensitivity.csv"
    pd.DataFrame(
        [
            {"task": "logreg", "optimizer": opt, "seed": s, "status": "completed",
             "statistic": "final", "metric": "hparam_sensitivity", "value": v + 0.01 * s}
            for s in range(3)
            for opt, v in (("adam", 0.5), ("amsgrad", 0.2))
        ]
    ).to_csv(sensitivity, index=False)  # fmt: skip
    settings = yaml.safe_load((repo_root / "config.yaml").read_text())
    settings["analysis"]["targets"] = {"logreg": {"train_loss": 0.4}}
    settings["analysis"]["min_seeds"] = 2  # three seeds here, two finite for the pairs
    settings["scale"] = "smoke"
    settings["tasks"]["logreg"].update(epochs=1, dataset="fashion_mnist")
    out = tmp_path / "tables"
    argv = ["analyse", "--runs", *map(str, runs), "--aggregates", str(agg)]
    argv += ["--sensitivity", str(sensitivity), "--claims", str(repo_root / "workflow/claims.yaml")]
    argv += ["--settings", json.dumps(settings), "--out-dir", str(out)]
    assert main(argv) == 0

    claims = pd.read_csv(out / "claims.csv").set_index("id")
    assert claims.loc["logreg_train_loss", "verdict"] == "reproduced"
    assert claims.loc["logreg_train_loss", "n_seeds"] == 2  # the diverged pair is left out
    assert claims.loc["logreg_train_loss", "diverged"] == "amsgrad 0, adam 1"
    assert claims.loc["logreg_hparam_robustness", "verdict"] == "reproduced"
    assert claims.loc["mlp_hparam_robustness", "verdict"] == "not run"
    assert claims.loc["cifarnet_test_loss", "verdict"] == "not run"

    paired = pd.read_csv(out / "paired.csv")
    row = paired[(paired["statistic"] == "best") & (paired["metric"] == "train_loss")].iloc[0]
    assert row["mean_diff"] == pytest.approx(-0.205, rel=1e-12) and row["p_improvement"] == 1.0

    ttt = pd.read_csv(out / "time_to_target.csv").set_index("optimizer")
    assert ttt.loc["amsgrad", "stays_from_step"] == 20 and ttt.loc["amsgrad", "reached"]
    assert ttt.loc["adam", "stays_from_step"] == 30 and not ttt.loc["adam", "reached"]

    finals = pd.read_csv(out / "finals.csv")
    assert set(finals["statistic"]) == {"final", "best"}
    adam = finals.query("optimizer == 'adam' and metric == 'train_loss'")
    assert adam["diverged"].eq(1).all() and adam["n"].eq(2).all()

    assert SHA in (out / "provenance.html").read_text()
    settings_page = (out / "settings.html").read_text()
    assert "0.003" in settings_page and "scale: smoke" in settings_page
    summary = (out / "summary.txt").read_text()
    # Every verdict line says which scale and length produced it (the CSV too).
    assert "checked at scale smoke" in summary and "A REDUCED run" in summary
    assert (
        "[REPRODUCED, SHORTENED] logreg_train_loss (smoke: 1 of 100 epochs; SHORTENED: 1 of 100 "
        "epochs; "
        "DATA: fashion_mnist instead of mnist)" in summary
    ), summary
    # A task that did not run states no length it did not run.
    assert "[NOT RUN] cifarnet_train_loss (smoke)" in summary, summary
    row = claims.loc["logreg_train_loss"]
    assert (row["scale"], row["run_length"], bool(row["shortened"])) == (
        "smoke",
        "1 of 100 epochs",
        True,
    )
    assert "stays at or past the target until the end" in summary
    assert "P(improvement)" in summary and "missed (budget 30)" in summary
    statistics = (out / "statistics.html").read_text()
    assert "Paired comparisons" in statistics and "Time to target" in statistics


def test_claims_file_entries_are_complete(repo_root):
    from amsgrad_repro.analysis.tables import load_claims

    claims = load_claims(repo_root / "workflow/claims.yaml")
    ids = [c["id"] for c in claims]
    assert len(ids) == len(set(ids))
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    from amsgrad_repro.analysis.grid_claims import RULE_TYPES as GRID_RULES

    for claim in claims:
        if claim["rule"]["type"] in GRID_RULES:  # tests/test_grids.py evaluates them
            assert claim["task"] in config["grids"]
            continue
        if claim["rule"]["type"] == "compare":  # three-way, against a margin > 0
            assert claim["rule"].get("margin", 0) + claim["rule"].get("relative_margin", 0) > 0
            continue
        assert claim["rule"]["side"] in ("above", "below")
        assert claim["rule"]["type"] in ("threshold", "paired")
    # Every configured task and grid has at least one claim.
    assert set(config["tasks"]) | set(config["grids"]) <= {c["task"] for c in claims}


def test_bad_claims_file_names_the_missing_field(tmp_path):
    from amsgrad_repro.analysis.tables import load_claims

    path = tmp_path / "claims.yaml"
    path.write_text("- {id: x, source: s, statement: t, task: logreg, metric: m}\n")
    with pytest.raises(ValueError, match=r"claim 'x' \(#0\): 'rule' is a required property"):
        load_claims(path)


def test_a_run_stopped_by_the_divergence_rule_counts_like_a_nan_run(tmp_path):
    """Its last row holds a finite 3.5e16; neither it nor a NaN run's NaN enters the means,
    and both are diverged seeds (NaN) in the finals."""
    ok = write_run(tmp_path, "mlp", "adam", 0, [1.0, 0.8, 0.6])
    huge = write_run(tmp_path, "mlp", "adam", 1, [1.0, 0.9, 3.5e16], status="diverged")
    nan = write_run(tmp_path, "mlp", "adam", 2, [1.0, 0.7, float("nan")], status="diverged")
    for path in (huge, nan):
        record = json.loads(path.read_text())
        record["diverged_at_step"] = 30
        path.write_text(json.dumps(record))
    table = aggregate_files([p.parent / "metrics.csv" for p in (ok, huge, nan)], tmp_path / "a.csv")
    last = table[(table["metric"] == "train_loss") & (table["step"] == 30)].iloc[0]
    assert last["n"] == 1 and last["mean"] == pytest.approx(0.6, rel=1e-12)
    before = table[(table["metric"] == "train_loss") & (table["step"] == 20)].iloc[0]
    assert before["n"] == 3 and before["mean"] == pytest.approx(0.8, rel=1e-12)
    finals = load_finals([ok, huge, nan])
    assert finals.loc[finals["seed"] > 0, "value"].isna().all()
    assert set(finals.loc[finals["seed"] > 0, "status"]) == {"diverged"}
