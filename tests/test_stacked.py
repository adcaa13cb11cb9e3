"""Stacked jobs against separate runs: same initial weights and batch order exactly, same
metrics to 1e-5 relative for every built-in optimizer, per-member divergence and freezing,
per-member hyper-parameters, and resumption after a real SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from amsgrad_repro.optimizers import BUILTINS
from amsgrad_repro.train.engine import KILL_AFTER_EPOCH_ENV, RunRequest, Trainer, train
from amsgrad_repro.train.models import build_model
from amsgrad_repro.train.models.stacked import StackedNetwork
from amsgrad_repro.train.stacked import Member, StackedRequest, StackedTrainer, train_stacked
from tests.test_train import task_settings, write_miniature

SEEDS = (0, 1, 2)
METRICS = [
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return write_miniature(tmp_path_factory.mktemp("data") / "miniature")


def settings(**changes):
    optimizers = sorted(BUILTINS)
    return task_settings(optimizers=optimizers, **changes)


def separate(cache, root, optimizer, seed, **changes) -> pd.DataFrame:
    out = root / f"sep-{optimizer}-{seed}"
    train(
        RunRequest(
            "toy", optimizer, seed, settings(**changes), cache, out, out / "ckpt", device="cpu"
        )
    )
    return pd.read_csv(out / "metrics.csv")


def stacked_request(cache, root, optimizer, members=None, **changes) -> StackedRequest:
    members = members or [Member(s, root / f"stk-{optimizer}-{s}") for s in SEEDS]
    return StackedRequest(
        "toy",
        optimizer,
        members,
        settings(**changes),
        cache,
        root / f"stk-{optimizer}-ckpt",
        device="cpu",
    )


@pytest.mark.parametrize("optimizer", sorted(BUILTINS))
@pytest.mark.parametrize("arch", ["logreg", "mlp"])
def test_each_member_equals_its_separate_run(cache, tmp_path, optimizer, arch):
    changes = {"model": {"arch": arch}, "hparams": {"lr": 0.01, "lr_schedule": "inv_sqrt"}}
    train_stacked(stacked_request(cache, tmp_path, optimizer, **changes))
    for seed in SEEDS:
        mine = pd.read_csv(tmp_path / f"stk-{optimizer}-{seed}" / "metrics.csv")
        theirs = separate(cache, tmp_path, optimizer, seed, **changes)
        assert mine["step"].tolist() == theirs["step"].tolist()
        np.testing.assert_allclose(mine[METRICS], theirs[METRICS], rtol=1e-5, atol=1e-7)
        info = json.loads((tmp_path / f"stk-{optimizer}-{seed}" / "run.json").read_text())
        assert info["stacked"]["members"] == list(SEEDS) and info["seed"] == seed


def test_initial_weights_and_batch_order_are_exactly_the_separate_runs(cache, tmp_path):
    trainer = StackedTrainer(stacked_request(cache, tmp_path, "adam"))
    meta = trainer.data.meta
    for position, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        alone = build_model({"arch": "mlp"}, meta).state_dict()
        mine = trainer.model.member_state_dict(position)
        assert all(torch.equal(mine[k], alone[k]) for k in alone)
        single = Trainer(
            RunRequest(
                "toy", "adam", seed, settings(), cache, tmp_path / "x", tmp_path / "y", device="cpu"
            )
        )
        size = single.splits.sizes["train"]
        assert torch.equal(
            torch.randperm(size, generator=single.order_gen),
            torch.randperm(size, generator=trainer.order_gens[position]),
        )


def test_members_may_differ_in_tunable_hyper_parameters(cache, tmp_path):
    points = [{"lr": 0.001, "beta2": 0.99}, {"lr": 0.003, "beta2": 0.999}]
    members = [Member(0, tmp_path / f"point{i}", p) for i, p in enumerate(points)]
    logreg = {"model": {"arch": "logreg"}}
    train_stacked(stacked_request(cache, tmp_path, "amsgrad", members=members, **logreg))
    for i, point in enumerate(points):
        mine = pd.read_csv(tmp_path / f"point{i}" / "metrics.csv")
        theirs = separate(cache, tmp_path, "amsgrad", 0, overrides={"amsgrad": point}, **logreg)
        # Per-member values are tensors, so the update rounds differently from a float
        # step (seeds with one setting agree to 1e-5, test above).
        np.testing.assert_allclose(mine[METRICS], theirs[METRICS], rtol=1e-4, atol=1e-7)
        info = json.loads((tmp_path / f"point{i}" / "run.json").read_text())
        assert info["hparams"]["lr"] == point["lr"] and info["hparams"]["beta2"] == point["beta2"]


def test_torch_classes_refuse_per_member_values(cache, tmp_path):
    members = [Member(0, tmp_path / "a", {"lr": 0.01}), Member(0, tmp_path / "b", {"lr": 0.1})]
    with pytest.raises(ValueError, match="cannot take per-member"):
        StackedTrainer(stacked_request(cache, tmp_path, "torch-adam", members=members))


def test_a_diverging_member_is_frozen_and_the_others_go_on(cache, tmp_path):
    members = [
        Member(0, tmp_path / "calm", {"lr": 0.01}),
        Member(1, tmp_path / "wild", {"lr": 1e37}),
        Member(2, tmp_path / "calm2", {"lr": 0.02}),
    ]
    records = train_stacked(
        stacked_request(
            cache, tmp_path, "amsgrad", members=members, hparams={"lr": 0.01, "eps": 0.0}
        )
    )
    status = {r["seed"]: r["status"] for r in records}
    assert status == {0: "completed", 1: "diverged", 2: "completed"}
    wild = pd.read_csv(tmp_path / "wild" / "metrics.csv")
    calm = pd.read_csv(tmp_path / "calm" / "metrics.csv")
    assert len(wild) < len(calm) and not np.isfinite(wild["train_loss"].iloc[-1])
    theirs = separate(cache, tmp_path, "amsgrad", 0, hparams={"lr": 0.01, "eps": 0.0})
    np.testing.assert_allclose(calm[METRICS], theirs[METRICS], rtol=1e-5, atol=1e-7)
    saved = torch.load(tmp_path / "wild" / "checkpoint.pt", weights_only=False)
    assert saved["step"] == records[1]["diverged_at_step"]


def test_a_job_whose_every_member_diverges_records_each_one(cache, tmp_path):
    """The last active members leave the stack together (an empty stack once failed to
    index with an empty list); every member still gets its outputs."""
    members = [Member(0, tmp_path / "a", {"lr": 1e37}), Member(1, tmp_path / "b", {"lr": 1e37})]
    records = train_stacked(
        stacked_request(cache, tmp_path, "amsgrad", members=members, hparams={"lr": 1e37})
    )
    assert [r["status"] for r in records] == ["diverged", "diverged"]
    for member in members:
        assert (member.out_dir / "metrics.csv").exists()
        assert (member.out_dir / "checkpoint.pt").exists()


def test_stacked_network_round_trips_member_weights():
    meta = {"image_shape": [1, 28, 28], "num_classes": 10}
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model({"arch": "mlp"}, meta))
    stack = StackedNetwork.from_models(models)
    x = torch.rand(3, 5, 1, 28, 28)
    out = stack(x)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x[i]), rtol=1e-5, atol=1e-6)
        assert stack.member_state_dict(i).keys() == model.state_dict().keys()
    shared = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(stack(shared, shared=True)[2], models[2](shared))
    kept = stack.select([0, 2])
    torch.testing.assert_close(kept.member_state_dict(1)["out.weight"], models[2].out.weight)


def test_killed_stacked_job_resumes_to_identical_results(cache, tmp_path):
    """A real SIGKILL after epoch 1's checkpoint; the rerun resumes and matches."""
    members = json.dumps([{"seed": s, "out": str(tmp_path / "killed" / str(s))} for s in SEEDS])
    command = [
        sys.executable,
        "-m",
        "amsgrad_repro.cli",
        "train-stacked",
        "--task",
        "toy",
        "--optimizer",
        "amsgrad",
        "--members",
        members,
        "--settings",
        json.dumps(settings(epochs=3)),
        "--dataset-cache",
        str(cache),
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--progress",
        "off",
    ]
    env = {**os.environ, KILL_AFTER_EPOCH_ENV: "1"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9
    assert (tmp_path / "ckpt" / "last.pt").exists()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    train_stacked(
        stacked_request(
            cache,
            tmp_path,
            "amsgrad",
            epochs=3,
            members=[Member(s, tmp_path / "whole" / str(s)) for s in SEEDS],
        )
    )
    for seed in SEEDS:
        a = pd.read_csv(tmp_path / "killed" / str(seed) / "metrics.csv").drop(columns="wall_time")
        b = pd.read_csv(tmp_path / "whole" / str(seed) / "metrics.csv").drop(columns="wall_time")
        pd.testing.assert_frame_equal(a, b)
        info = json.loads((tmp_path / "killed" / str(seed) / "run.json").read_text())
        assert info["resumed_from_epoch"] == 1
