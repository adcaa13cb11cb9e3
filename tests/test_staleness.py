"""Pulled runs are compared with the settings the configuration gives them (the check
Snakemake's start-up makes, ``amsgrad_repro.staleness``); the share test runs it for real
in a pulled clone."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from amsgrad_repro.config import resolve
from amsgrad_repro.staleness import (
    expected_settings,
    pulled_runs,
    record_pulled,
    run_identity,
    stale_message,
    stale_runs,
)
from amsgrad_repro.startup import Forcing, forcing


@pytest.fixture
def settings(repo_root):
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    return resolve({**raw, "scale": "smoke"})


def write_run(root: Path, run_dir: str, task_settings: dict, optimizer: str) -> None:
    folder = root / run_dir
    folder.mkdir(parents=True)
    record = {"optimizer": optimizer, "settings": task_settings, "status": "completed"}
    (folder / "run.json").write_text(json.dumps(record))


def test_only_what_changes_the_numbers_counts(settings):
    task = settings["tasks"]["mlp"]
    edited = copy.deepcopy(task)
    edited["resources"]["mem_mb"] = 1
    edited.setdefault("overrides", {})["adamnc"] = {"lr": 0.5}  # another optimizer's
    edited["paper"] = {"epochs": 3}
    assert run_identity(edited, "adam") == run_identity(task, "adam")
    edited["hparams"]["lr"] = 1e6
    assert run_identity(edited, "adam") != run_identity(task, "adam")


def test_pulled_runs_with_other_settings_are_listed_with_the_fix(settings, tmp_path):
    old = copy.deepcopy(settings["tasks"]["mlp"])
    for optimizer in ("adam", "amsgrad"):
        write_run(tmp_path, f"results/runs/mlp/{optimizer}/0", old, optimizer)
    write_run(
        tmp_path,
        "results/runs/synthetic_online/adam/1",
        settings["tasks"]["synthetic_online"],
        "adam",
    )
    write_run(tmp_path, "results/runs/mlp/adam/7", old, "adam")  # seed 7 is not configured
    pulled = ["results/runs/mlp/adam/0", "results/runs/mlp/amsgrad/0"]
    record_pulled(
        tmp_path, [*pulled, "results/runs/synthetic_online/adam/1", "results/runs/mlp/adam/7"]
    )
    assert stale_runs(tmp_path, settings) == []  # pulled with the same settings
    now = copy.deepcopy(settings)
    now["tasks"]["mlp"]["hparams"]["lr"] = 1e6
    stale = stale_runs(tmp_path, now)
    assert [s.run_dir for s in stale] == pulled
    assert stale[0].differences == ["hparams.lr: 0.001 in the run, 1000000.0 now"]
    message = stale_message(stale, ["snakemake", "--cores", "2"])
    assert "2 pulled runs were made with other settings" in message
    assert (
        "snakemake --cores 2 --forcerun results/runs/mlp/adam/0/run.json "
        "results/runs/mlp/amsgrad/0/run.json\n" in message
    )
    # A call that recomputes a run exempts it; a recomputed run is no longer "pulled".
    exempt = Forcing(forcerun=frozenset({"results/runs/mlp/adam/0/run.json"})).recomputes
    assert [s.run_dir for s in stale_runs(tmp_path, now, exempt)] == ["results/runs/mlp/amsgrad/0"]
    one = stale_message(stale[:1], ["snakemake", "--cores", "2"])
    assert one.startswith("1 pulled run was made with other settings"), one
    (tmp_path / "results/runs/mlp/amsgrad/0/run.json").write_text("{}")
    assert "results/runs/mlp/amsgrad/0" not in pulled_runs(tmp_path)


def test_tuned_runs_are_expected_with_the_tuning_selection(settings, tmp_path):
    tuned = {**settings, "tune": True}
    assert (
        expected_settings(tmp_path, tuned, "results/runs/logreg/adam/0") is None
    )  # no selection yet
    selection = tmp_path / "results/tuning/logreg/adam.json"
    selection.parent.mkdir(parents=True)
    selection.write_text(
        json.dumps({"optimizer": "adam", "selected": {"lr": 0.03, "beta2": 0.999}})
    )
    expected = expected_settings(tmp_path, tuned, "results/runs/logreg/adam/0")
    assert run_identity(expected, "adam")["hparams"]["lr"] == 0.03
    grid = expected_settings(
        tmp_path, tuned, "results/tuning/runs/logreg/adam/lr0.003_beta20.999/1"
    )
    assert run_identity(grid, "adam")["hparams"]["lr"] == 0.003
    assert (
        expected_settings(tmp_path, tuned, "results/tuning/runs/logreg/adam/lr0.5_beta20.999/1")
        is None
    )


def test_the_command_line_says_what_is_recomputed():
    line = ["snakemake", "--cores", "2", "--config", "scale=smoke", "--forcerun", "a/run.json"]
    assert forcing(line).forcerun == {"a/run.json"} and forcing(line).params_trigger
    run = "results/runs/m/a/0"
    assert forcing(["snakemake", "-f", f"{run}/run.json"]).recomputes(run)
    assert not forcing(["snakemake", f"{run}/run.json"]).recomputes(run)
    assert forcing(["snakemake", "--forcerun", "train"]).recomputes(run)
    assert not forcing(["snakemake", "--rerun-triggers", "mtime", "input"]).params_trigger
