"""The logistic regression and MLP tasks end to end through Snakemake (smoke preset) on a
miniature Fashion-MNIST in the real IDX format: data stage, per-seed runs, aggregates,
figures, resumption of a killed job, and reruns of exactly the jobs whose settings
changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from amsgrad_repro.data import load_cache
from amsgrad_repro.train.engine import KILL_AFTER_EPOCH_ENV
from tests.miniatures import write_idx_dataset
from tests.pipeline import (
    copy_workflow,
    make_project,
    run_snakemake,
    scheduled_jobs,
    snakemake_command,
    snakemake_env,
)

TASKS = ("logreg", "mlp")
# Every test here runs Snakemake or reads what it ran.
pytestmark = pytest.mark.slow


def scratch_workflow(root: Path) -> Path:
    """A workflow copy (git + DVC repo, as the data stage expects) whose fashion_mnist is a
    miniature in the real IDX format, so data → train → figures all run for real."""
    workdir = copy_workflow(root / "wf")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    # 1200 training images (120 held out for validation) leave the smoke subset's 1024.
    config["datasets"]["fashion_mnist"] = write_idx_dataset(
        root / "mini", num_train=1200, num_test=600
    )
    return make_project(workdir, config)


def targets(workdir: Path) -> list[str]:
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    seeds = range(config["presets"]["smoke"]["seeds"])
    runs = [
        f"results/runs/{task}/{optimizer}/{seed}/metrics.csv"
        for task in TASKS
        for optimizer in config["tasks"][task]["optimizers"]
        for seed in seeds
    ]
    return runs + [f"results/figures/{task}.{ext}" for task in TASKS for ext in ("png", "pdf")]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    workdir = scratch_workflow(tmp_path_factory.mktemp("train"))
    run_snakemake(workdir, *targets(workdir), "--config", "scale=smoke")
    return workdir


def test_every_run_has_its_outputs(smoke_run):
    config = yaml.safe_load((smoke_run / "config.yaml").read_text())
    cache_meta = load_cache(smoke_run / "data/cache/fashion_mnist.pt").meta
    for task in TASKS:
        for optimizer in config["tasks"][task]["optimizers"]:
            for seed in (0, 1):
                run = smoke_run / "results/runs" / task / optimizer / str(seed)
                metrics = pd.read_csv(run / "metrics.csv")
                # 1024 training images (subset), batch 128: 8 steps, logged every 4.
                assert metrics["step"].tolist() == [4, 8]
                assert {"train_loss", "test_loss", "test_accuracy", "val_loss"} <= set(
                    metrics.columns
                )
                info = json.loads((run / "run.json").read_text())
                assert info["status"] == "completed" and info["seed"] == seed
                assert info["data"]["subset"] == {"train": 1024, "eval": 500}
                assert info["data"]["sizes"] == {"train": 1024, "val": 120, "test": 500}
                assert info["settings"]["dataset"] == "fashion_mnist"
                assert info["dataset_sha256"] == cache_meta["sha256"]
                assert (run / "checkpoint.pt").stat().st_size > 1000
                # Seeds of an optimizer train as one stacked job (config stack: seeds).
                assert info["stacked"]["members"] == [0, 1]
            log = smoke_run / "results/logs/train" / task / optimizer / "stacked.log"
            assert "epoch 1/1" in log.read_text()
    # Finished runs leave no checkpoint folders behind (nor their empty parents).
    assert not list((smoke_run / "results/checkpoints").iterdir())


def test_figures_and_aggregates(smoke_run):
    for task in TASKS:
        table = pd.read_csv(smoke_run / "results/aggregates" / f"{task}.csv")
        assert {"train_loss", "test_loss"} <= set(table["metric"])
        assert (table["n"] == 2).all()
        for ext in ("png", "pdf"):
            assert (smoke_run / "results/figures" / f"{task}.{ext}").stat().st_size > 10_000


def test_killed_job_resumes_under_snakemake(tmp_path):
    """A (stacked) job killed after its epoch checkpoint fails; Snakemake deletes its
    declared outputs, and the rerun resumes from the checkpoint instead of starting over."""
    workdir = scratch_workflow(tmp_path)
    target = "results/runs/mlp/amsgrad/0/run.json"
    env = {**snakemake_env(), KILL_AFTER_EPOCH_ENV: "1"}
    killed = subprocess.run(
        snakemake_command(target, "--config", "scale=smoke"),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode != 0
    assert (workdir / "results/checkpoints/mlp/amsgrad/stacked/last.pt").exists()
    assert not (workdir / target).exists()
    run_snakemake(workdir, target, "--config", "scale=smoke")
    log = (workdir / "results/logs/train/mlp/amsgrad/stacked.log").read_text()
    assert "resuming after epoch 1" in log
    assert json.loads((workdir / target).read_text())["resumed_from_epoch"] == 1


def test_a_setting_change_reruns_only_the_jobs_whose_settings_it_changes(tmp_path):
    """Each job's params are its own resolved settings (amsgrad_repro.run_settings), so
    Snakemake's params trigger reruns exactly the jobs a change reaches: a new shared α of
    logistic regression retrains adam and amsgrad but not lion, whose override keeps its
    own α; a new override of lion's retrains lion alone; the stacked jobs (logreg) and
    the per-seed ones (mlp, stack: none) alike, with Snakemake's default triggers."""
    workdir = scratch_workflow(tmp_path)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    optimizers = ["adam", "amsgrad", "lion"]
    for task in TASKS:
        config["tasks"][task]["optimizers"] = optimizers
    config["tasks"]["mlp"]["stack"] = "none"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    runs = [f"{t}/{o}/{s}" for t in TASKS for o in optimizers for s in (0, 1)]
    targets = [f"results/runs/{run}/run.json" for run in runs]
    run_snakemake(workdir, *targets, "--config", "scale=smoke")

    def reruns(*change: str) -> list[tuple[str, list[str]]]:
        """(rule, the runs it would remake) of each job Snakemake would run."""
        jobs = scheduled_jobs(workdir, *targets, "--config", "scale=smoke", *change)
        return [
            (
                rule,
                [
                    f[len("results/runs/") : -len("/run.json")]
                    for f in files
                    if f.endswith("/run.json")
                ],
            )
            for rule, files in jobs
        ]

    assert reruns() == []
    new_lr = "tasks={logreg: {hparams: {lr: 0.02}}}"
    assert reruns(new_lr) == [
        ("train_stacked_logreg_adam", ["logreg/adam/0", "logreg/adam/1"]),
        ("train_stacked_logreg_amsgrad", ["logreg/amsgrad/0", "logreg/amsgrad/1"]),
    ]
    assert reruns("tasks={mlp: {overrides: {lion: {lr: 0.0005}}}}") == [
        ("train", ["mlp/lion/0"]),
        ("train", ["mlp/lion/1"]),
    ]
    assert reruns("tasks={mlp: {hparams: {lr: 0.002}}}") == [
        ("train", [f"mlp/{o}/{s}"]) for o in ("adam", "amsgrad") for s in (0, 1)
    ]
    # Cluster resources are no job's settings.
    assert reruns("tasks={logreg: {resources: {mem_mb: 3000}}}") == []

    # Rerun: the retrained jobs were given the new α; lion's runs were left as they were.
    lion = workdir / "results/runs/logreg/lion/0/run.json"
    before = lion.read_bytes()
    run_snakemake(workdir, *targets, "--config", "scale=smoke", new_lr)
    assert lion.read_bytes() == before
    adam = json.loads((workdir / "results/runs/logreg/adam/0/run.json").read_text())
    assert adam["hparams"]["lr"] == 0.02 and adam["settings"]["optimizers"] == ["adam"]
    assert reruns(new_lr) == []
