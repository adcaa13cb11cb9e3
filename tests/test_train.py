"""The training engine on tiny datasets written in the real cache format: determinism,
paired starts across optimizers, resume after a real SIGKILL, divergence, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from amsgrad_repro.data.cache import CacheWriter
from amsgrad_repro.train.engine import KILL_AFTER_EPOCH_ENV, RunRequest, Trainer, train

TIMING_COLUMNS = ["wall_time"]


def write_miniature(
    folder: Path, shape=(1, 28, 28), n_train=384, n_test=128, n_val=64, classes=10, seed=0
) -> Path:
    """A learnable toy dataset: each class brightens its own band of pixels over noise."""
    rng = np.random.default_rng(seed)
    c, h, w = shape

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, classes, n)
        x = rng.integers(0, 96, (n, c, h, w))
        band = h // classes or 1
        for i, label in enumerate(labels):
            x[i, :, label * band : (label + 1) * band] += 150
        return x.clip(0, 255).astype(np.uint8), labels.astype(np.int64)

    train_x, train_y = images(n_train)
    test_x, test_y = images(n_test)
    writer = CacheWriter(folder)
    for name, array in (
        ("train_x", train_x),
        ("train_y", train_y),
        ("test_x", test_x),
        ("test_y", test_y),
        ("val_index", np.sort(rng.permutation(n_train)[:n_val]).astype(np.int64)),
    ):
        writer.array(name, array)
    writer.commit(
        {
            "name": "miniature",
            "md5": "0" * 32,
            "num_classes": classes,
            "image_shape": list(shape),
            "classes": None,
            "num_train": n_train,
            "num_test": n_test,
            "num_val": n_val,
        }
    )
    return folder / "meta.json"


def task_settings(**changes: Any) -> dict[str, Any]:
    settings = {
        "kind": "classifier",
        "dataset": "miniature",
        "model": {"arch": "mlp"},
        "optimizers": ["adam", "amsgrad", "adamnc", "torch-adam", "torch-amsgrad", "sgd"],
        "hparams": {"lr": 0.01, "lr_schedule": "constant", "beta1": 0.9, "beta2": 0.999},
        "batch_size": 32,
        "epochs": 2,
        "log_every": 4,
        "eval_batch_size": 50,
    }
    settings.update(changes)
    return settings


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return write_miniature(tmp_path_factory.mktemp("data") / "miniature")


def request(cache: Path, root: Path, optimizer="amsgrad", seed=0, **changes) -> RunRequest:
    return RunRequest(
        task="toy",
        optimizer=optimizer,
        seed=seed,
        settings=task_settings(**changes),
        dataset_cache=cache,
        out_dir=root / "run",
        checkpoint_dir=root / "ckpt",
        device="cpu",
    )


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=TIMING_COLUMNS)


def test_outputs_follow_the_results_contract(cache, tmp_path):
    record = train(request(cache, tmp_path))
    run = tmp_path / "run"
    table = pd.read_csv(run / "metrics.csv")
    assert list(table.columns) == [
        "step", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
        "test_loss", "test_accuracy", "lr", "wall_time",
    ]  # fmt: skip
    # 320 training images (64 held out for validation) / 32 = 10 steps per epoch;
    # logged every 4 (global) steps and at each epoch end.
    assert table["step"].tolist() == [4, 8, 10, 12, 16, 20]
    assert table["epoch"].tolist()[2::3] == [1.0, 2.0]
    assert table["train_loss"].iloc[-1] < table["train_loss"].iloc[0]
    assert table["test_accuracy"].iloc[-1] > 0.3  # chance is 0.1
    info = json.loads((run / "run.json").read_text())
    assert info == json.loads(json.dumps(record))
    assert info["status"] == "completed" and info["seed"] == 0 and info["steps"] == 20
    assert info["final"]["test_loss"] == table["test_loss"].iloc[-1]  # the same float, repr
    assert info["data"]["sizes"] == {"train": 320, "val": 64, "test": 128}
    assert info["dataset_md5"] == "0" * 32 and info["device"] == "cpu"
    # The hash of the tensors trained on, verified at load, beside the raw files' hash.
    from amsgrad_repro.data import load_cache

    assert info["cache_sha256"] == load_cache(cache).content_sha256 == info["data"]["cache_sha256"]
    assert info["data"]["cache_check"] == "full"
    assert "torch" in info["versions"] and "git_commit" in info
    final = torch.load(run / "checkpoint.pt", weights_only=False)
    assert final["step"] == 20 and "hidden.weight" in final["model"]
    assert not (tmp_path / "ckpt" / "last.pt").exists()  # removed once outputs exist


def test_same_seed_is_bit_identical_on_cpu(cache, tmp_path):
    train(request(cache, tmp_path / "a", seed=3))
    train(request(cache, tmp_path / "b", seed=3))
    train(request(cache, tmp_path / "c", seed=4))
    a, b, c = (metrics(tmp_path / name / "run") for name in "abc")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not a["train_loss"].equals(c["train_loss"])


def test_optimizers_share_initial_weights_and_batch_order(cache, tmp_path):
    trainers = [
        Trainer(request(cache, tmp_path / name, optimizer=name))
        for name in ("adam", "torch-amsgrad", "sgd")
    ]
    first = trainers[0]
    for other in trainers[1:]:
        for key, value in first.model.state_dict().items():
            assert torch.equal(value, other.model.state_dict()[key])
        perm = torch.randperm(320, generator=first.order_gen.clone_state())
        assert torch.equal(perm, torch.randperm(320, generator=other.order_gen.clone_state()))
    assert isinstance(trainers[2].optimizer, torch.optim.SGD)


def test_divergence_is_recorded_not_raised(cache, tmp_path):
    record = train(
        request(cache, tmp_path, optimizer="sgd", hparams={"lr": 1e38}, epochs=3, log_every=2)
    )
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert record["status"] == "diverged"
    assert record["diverged_at_step"] == table["step"].iloc[-1] < 30
    assert not np.isfinite(table[["train_loss", "test_loss"]].iloc[-1]).all()
    assert np.isfinite(table["train_loss"].iloc[:-1]).all()


def test_subset_and_holdout_are_applied_and_recorded(cache, tmp_path):
    record = train(
        request(cache, tmp_path, subset={"train": 100, "eval": 40}, holdout_val=True, epochs=1)
    )
    assert record["data"]["sizes"] == {"train": 100, "val": 40, "test": 40}
    assert record["data"]["subset"] == {"train": 100, "eval": 40}
    assert record["steps"] == 4  # ceil(100 / 32)
    whole = train(request(cache, tmp_path / "all", holdout_val=False, epochs=1))
    assert whole["data"]["sizes"]["train"] == 384


def test_inverse_sqrt_learning_rate_is_logged(cache, tmp_path):
    train(
        request(
            cache,
            tmp_path,
            optimizer="torch-adam",
            model={"arch": "logreg"},
            hparams={"lr": 0.01, "lr_schedule": "inv_sqrt"},
        )
    )
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    # 0.01·(1/√t) against 0.01/√t, through the CSV's repr: ≤ 3 roundings (3.3e-16)
    np.testing.assert_allclose(table["lr"], 0.01 / np.sqrt(table["step"]), rtol=1e-15, atol=0)


def _cli(
    cache: Path,
    root: Path,
    settings: dict,
    env_extra: dict | None = None,
    seed=1,
    ckpt: Path | None = None,
):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop(KILL_AFTER_EPOCH_ENV, None) if not env_extra else None
    command = [
        sys.executable, "-m", "amsgrad_repro.cli", "train", "--task", "toy",
        "--optimizer", "amsgrad", "--seed", str(seed), "--settings", json.dumps(settings),
        "--dataset-cache", str(cache), "--out", str(root / "run"),
        "--checkpoint-dir", str(ckpt or root / "ckpt"), "--device", "cpu", "--threads", "1",
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="mlp"),
        pytest.param(
            {
                "kind": "vae",
                "model": {"arch": "vae", "size": "mnist"},
                "hparams": {"lr": 0.0002, "lr_schedule": "inv_sqrt", "beta1": 0.5, "beta2": 0.999},
                "batch_size": 64,
            },
            id="vae-noise",
        ),
        pytest.param(
            {
                "model": {"arch": "cifarnet", "padding": "valid", "fc_sizes": [32, 16]},
                "input": {"scale": "standardize", "augment": "crop_flip"},
                "subset": {"train": 96, "eval": 32},
            },
            id="cifarnet-dropout-augment",
        ),
    ],
)
def test_killed_run_resumes_to_identical_results(tmp_path, changes):
    """SIGKILL right after epoch 1's checkpoint, rerun, compare with an uninterrupted run;
    the VAE and CIFARNET cases cover the kind's generator and the dropout RNG."""
    shape = (3, 32, 32) if "cifarnet" in str(changes) else (1, 28, 28)
    cache = write_miniature(tmp_path / "data", shape=shape, n_train=224, n_test=64, n_val=32)
    settings = task_settings(epochs=3, **changes)
    killed = _cli(cache, tmp_path / "resumed", settings, {KILL_AFTER_EPOCH_ENV: "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / "resumed" / "ckpt" / "last.pt").exists()
    assert not (tmp_path / "resumed" / "run" / "run.json").exists()
    resumed = _cli(cache, tmp_path / "resumed", settings)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch 1" in resumed.stdout
    straight = _cli(cache, tmp_path / "straight", settings)
    assert straight.returncode == 0, straight.stderr[-2000:]
    a, b = metrics(tmp_path / "resumed" / "run"), metrics(tmp_path / "straight" / "run")
    assert a["epoch"].max() == 3
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    info = json.loads((tmp_path / "resumed" / "run" / "run.json").read_text())
    assert info["resumed_from_epoch"] == 1 and info["status"] == "completed"
    assert np.isfinite(a["train_loss"]).all()
    final_a = torch.load(tmp_path / "resumed" / "run" / "checkpoint.pt", weights_only=False)
    final_b = torch.load(tmp_path / "straight" / "run" / "checkpoint.pt", weights_only=False)
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key


def test_checkpoint_of_other_settings_is_not_resumed(cache, tmp_path):
    first = request(cache, tmp_path, epochs=1)
    trainer = Trainer(first)
    trainer.save_checkpoint()
    changed = Trainer(request(cache, tmp_path, epochs=1, hparams={"lr": 0.02}))
    assert not changed.try_resume()
    assert Trainer(first).try_resume()


# loss = recon + kl per batch, then each of the three averaged alike over a log interval
# (at most 4 batches) or an evaluation set (a sum per batch of 50): a handful of roundings
# of positive terms, each ≤ u = eps/2 relative, so |loss − (recon + kl)| ≤ ~10·u·loss:
# 6e-7 in float32 (1e-5 leaves a margin of 16), 1.1e-15 in float64 (1e-13: 90).
ELBO_RTOL = {"float32": 1e-5, "float64": 1e-13}


@pytest.mark.parametrize("dtype", sorted(ELBO_RTOL))
def test_vae_reports_elbo_terms_and_image_grid(cache, tmp_path, dtype):
    record = train(
        request(
            cache,
            tmp_path,
            kind="vae",
            model={"arch": "vae", "size": "mnist"},
            hparams={"lr": 0.0002, "lr_schedule": "inv_sqrt", "beta1": 0.5, "beta2": 0.999},
            epochs=1,
            subset={"train": 64, "eval": 32},
            performance={"dtype": dtype},
        )
    )
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(
            table[f"{split}_loss"],
            table[f"{split}_recon"] + table[f"{split}_kl"],
            rtol=ELBO_RTOL[dtype],
        )
    assert (tmp_path / "run" / "samples.png").stat().st_size > 500
    assert record["artifacts"] == [str(tmp_path / "run" / "samples.png")]


def test_adding_an_optimizer_keeps_other_checkpoints_valid(cache, tmp_path):
    Trainer(request(cache, tmp_path, epochs=1)).save_checkpoint()
    more = Trainer(request(cache, tmp_path, epochs=1, optimizers=["amsgrad", "rmsprop"]))
    assert more.try_resume()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update(epoch=3), "tasks.logreg: Additional properties are not allowed"),
        (lambda t: t.update(batch_size=0), "tasks.logreg.batch_size"),
        (lambda t: t["resources"].pop("gpus"), "tasks.logreg.resources: 'gpus' is a required"),
        (lambda t: t.update(subset={"train": 10, "test": 5}), "tasks.logreg.subset"),
        (lambda t: t.update(performance={"dtype": "float16"}), "tasks.logreg.performance.dtype"),
    ],
)
def test_training_task_config_errors_name_the_key(repo_root, change, message):
    import yaml

    from amsgrad_repro.config import ConfigError, resolve

    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    change(raw["tasks"]["logreg"])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolve(raw)


def test_presets_pick_the_dataset_and_scale(repo_root):
    from amsgrad_repro.config import load

    paper = load(repo_root / "config.yaml", {"scale": "paper"})["tasks"]
    smoke = load(repo_root / "config.yaml", {"scale": "smoke"})["tasks"]
    for task in ("logreg", "mlp"):
        assert (paper[task]["dataset"], paper[task]["epochs"]) == ("mnist", 100)
        assert smoke[task]["dataset"] == "fashion_mnist" and smoke[task]["subset"]
    assert paper["logreg"]["hparams"]["lr_schedule"] == "inv_sqrt"
    assert paper["mlp"]["hparams"]["lr_schedule"] == "constant"


def test_cli_rejects_an_optimizer_the_task_does_not_list(cache, tmp_path):
    from amsgrad_repro.cli import main

    code = main(
        ["train", "--task", "toy", "--optimizer", "adagrad", "--seed", "0",
         "--settings", json.dumps(task_settings()), "--dataset-cache", str(cache),
         "--out", str(tmp_path / "run"), "--device", "cpu"]
    )  # fmt: skip
    assert code == 2 and not (tmp_path / "run").exists()


def test_figure_marks_subsets_and_diverged_seeds(tmp_path):
    from amsgrad_repro.train.figure import training_figure, warnings_line

    rows = [
        {"optimizer": o, "step": s, "metric": m, "mean": 1.0 / s, "median": 1.0 / s,
         "lo": 0.9 / s, "hi": 1.1 / s, "n": 2}
        for o in ("adam", "amsgrad") for s in (10, 20, 30) for m in ("train_loss", "test_loss")
    ]  # fmt: skip
    aggregate = tmp_path / "agg.csv"
    pd.DataFrame(rows).to_csv(aggregate, index=False)
    records = []
    for optimizer in ("adam", "amsgrad"):
        for seed in (0, 1):
            status = "diverged" if (optimizer, seed) == ("adam", 1) else "completed"
            path = tmp_path / f"{optimizer}{seed}.json"
            path.write_text(json.dumps({"optimizer": optimizer, "seed": seed, "status": status}))
            records.append(path)
    settings = task_settings(subset={"train": 100, "eval": None})
    note = warnings_line(settings, [json.loads(p.read_text()) for p in records])
    assert note == "SUBSET: train 100 examples; diverged (stopped early): adam/1"
    outputs = [tmp_path / "fig.png", tmp_path / "fig.pdf"]
    training_figure("toy", aggregate, settings, records, outputs, log_y=True)
    assert all(path.stat().st_size > 5000 for path in outputs)


def test_progress_bar_and_epoch_lines(cache, tmp_path, capsys):
    run = request(cache, tmp_path, epochs=2)
    run.progress_bar = True
    train(run)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if " epoch " in line]
    assert len(lines) == 2 and "steps/s" in lines[0] and "ETA" in lines[0]
    assert "toy/amsgrad/0" in captured.err  # the tqdm bar


def test_figure_flags_shortened_runs_other_data_and_counts_many_diverged(tmp_path):
    from amsgrad_repro.train.figure import samples_figure, training_figure, warnings_line

    settings = task_settings(
        kind="vae",
        dataset="fashion_mnist",
        epochs=2,
        paper={"dataset": "mnist", "epochs": 100},
        subset={"train": 10000, "eval": 2000},
    )
    records = [
        {"optimizer": o, "seed": s, "status": "diverged" if s < 4 else "completed"}
        for o in ("adam", "amsgrad")
        for s in range(5)
    ]
    assert warnings_line(settings, records) == (
        "SHORTENED: 2 of 100 epochs; DATA: fashion_mnist instead of mnist; "
        "SUBSET: train 10000, eval 2000 examples; "
        "diverged (stopped early): 8 of 10 runs (adam 4/5, amsgrad 4/5)"
    )
    full = task_settings(dataset="mnist", epochs=100, paper={"dataset": "mnist", "epochs": 100})
    assert warnings_line(full, records[-1:]) == ""
    # The VAE figure has rows for the negative ELBO, reconstruction and KL.
    rows = [
        {"optimizer": o, "step": s, "metric": f"{split}_{m}", "mean": 1.0 / s,
         "median": 1.0 / s, "lo": 0.9 / s, "hi": 1.1 / s, "n": 2}
        for o in ("adam", "amsgrad") for s in (10, 20) for split in ("train", "test")
        for m in ("loss", "recon", "kl")
    ]  # fmt: skip
    aggregate = tmp_path / "agg.csv"
    pd.DataFrame(rows).to_csv(aggregate, index=False)
    training_figure("vae", aggregate, settings, [], [tmp_path / "curves.png"])
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    # The image-grid figure reads each optimizer's first seed's samples.png.
    from PIL import Image

    runs = []
    for optimizer in ("adam", "amsgrad"):
        for seed in (1, 0):
            folder = tmp_path / optimizer / str(seed)
            folder.mkdir(parents=True)
            Image.new("L", (60, 80), color=40 * seed).save(folder / "samples.png")
            record = {"optimizer": optimizer, "seed": seed, "status": "completed",
                      "final": {"test_loss": 250.0}}  # fmt: skip
            (folder / "run.json").write_text(json.dumps(record))
            runs.append(folder / "run.json")
    samples_figure("vae", settings, runs, [tmp_path / "grids.png"])
    assert (tmp_path / "grids.png").stat().st_size > 5_000


def test_kinds_write_exactly_the_artifacts_the_workflow_declares(cache, tmp_path, repo_root):
    """kinds.SAMPLES is what each kind writes (the VAE's and LM's runs are tested to write
    it), with a caption the report finds and a medium the samples figure draws; a
    classifier writes the run files alone."""
    from amsgrad_repro.kinds import KIND_MODULES, MEDIA, SAMPLES, train_rule
    from amsgrad_repro.train.api import load_kind

    assert set(SAMPLES) <= set(KIND_MODULES)
    for kind in KIND_MODULES:
        declared = (SAMPLES[kind].file,) if kind in SAMPLES else ()
        assert load_kind(kind).artifact_files == declared
        assert train_rule(kind) == (f"train_{kind}" if declared else "train")
    for samples in SAMPLES.values():
        assert (repo_root / "workflow/report" / samples.caption).is_file()
        assert samples.medium in MEDIA
    record = train(request(cache, tmp_path, epochs=1, subset={"train": 64, "eval": 32}))
    assert record["artifacts"] == []
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert written == {"metrics.csv", "run.json", "checkpoint.pt"}


def test_finite_divergence_is_caught_by_the_loss_factor_rule(cache, tmp_path):
    """α = 10^6 sends the MLP's loss to huge but finite values: only NaN/inf used to count,
    so the run was "completed". The rule (loss above 100 × the initial loss) stops it."""
    huge = {"hparams": {"lr": 1e6, "lr_schedule": "constant", "beta1": 0.9, "beta2": 0.999}}
    without = train(request(cache, tmp_path / "off", optimizer="adam", epochs=1,
                            divergence={"loss_factor": None}, **huge))  # fmt: skip
    logged = pd.read_csv(tmp_path / "off" / "run" / "metrics.csv")
    assert without["status"] == "completed" and np.isfinite(logged["train_loss"]).all()
    initial = without["divergence"]["initial_loss"]
    assert logged["train_loss"].max() > 100 * initial  # the run the old rule let through
    record = train(request(cache, tmp_path, optimizer="adam", epochs=1, **huge))
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert record["status"] == "diverged" and record["diverged_at_step"] == table["step"].iloc[-1]
    assert record["divergence"]["loss_factor"] == 100 and record["divergence"]["initial_loss"]
    assert record["divergence"]["limit"] == pytest.approx(
        100 * record["divergence"]["initial_loss"], rel=1e-15
    )  # one product, one rounding
    assert "above 100 × the initial loss" in record["diverged_reason"]
    assert table.filter(like="_loss").iloc[-1].max() > record["divergence"]["limit"]


def test_non_finite_values_are_written_as_nan_not_empty_cells(cache, tmp_path):
    train(request(cache, tmp_path, optimizer="sgd", hparams={"lr": 1e38}, epochs=3, log_every=2))
    last = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert "" not in last and {"nan", "inf"} & set(last), last


HOLD_LOCK = """
import sys
from pathlib import Path
from amsgrad_repro.train.runlock import run_lock
with run_lock(Path(sys.argv[1])):
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_a_second_trainer_of_the_same_run_stops_with_the_holders_pid(cache, tmp_path):
    """What an orphan of a SIGKILLed snakemake does to a rerun: it still holds the run. The
    second trainer must not train alongside; once the holder is gone (even by SIGKILL) the
    run trains, and its emptied checkpoint folders are removed."""
    root = tmp_path / "results"
    checkpoints = root / "checkpoints" / "toy" / "amsgrad" / "1"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(checkpoints)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        second = _cli(cache, root, task_settings(epochs=1), ckpt=checkpoints)
        assert second.returncode == 1, second.stderr
        assert (
            f"pid {holder.pid} on host" in second.stderr and f"kill {holder.pid}" in second.stderr
        )
        assert "Traceback" not in second.stderr and not (root / "run").exists()
    finally:
        holder.kill()
        holder.wait()
    third = _cli(cache, root, task_settings(epochs=1), ckpt=checkpoints)
    assert third.returncode == 0, third.stderr
    assert (root / "run" / "run.json").exists()
    assert not (root / "checkpoints" / "toy").exists()  # no empty folders left behind
    assert (root / "checkpoints").is_dir()


@pytest.mark.parametrize("flush", [True, False])
def test_flush_denormal_is_applied_on_the_cpu_and_can_be_switched_off(flush):
    from amsgrad_repro.train.device import configure_backends, performance_options

    subnormal = torch.tensor([1e-40], dtype=torch.float32)
    try:
        configure_backends(torch.device("cpu"), performance_options({"performance": {}}))
        assert (subnormal * 1.0).item() == 0.0  # on by default
        options = performance_options({"performance": {"flush_denormal": flush}})
        configure_backends(torch.device("cpu"), options)
        assert ((subnormal * 1.0).item() == 0.0) == flush
    finally:
        torch.set_flush_denormal(False)


def test_resident_inputs_equal_the_per_batch_transform_bit_for_bit(cache, monkeypatch):
    from amsgrad_repro.data import load_cache
    from amsgrad_repro.train import batches
    from amsgrad_repro.train.kinds.classifier import KIND

    data = load_cache(cache)
    splits = batches.make_splits(data, {"holdout_val": True}, torch.device("cpu"))
    for scale in ("unit", "standardize"):
        transform = KIND.input_transform(data.train_x, {"input": {"scale": scale}})
        inputs = batches.resident_inputs(transform, data.train_x, splits, epochs=2)
        assert inputs.train_x.dtype == torch.float32
        batch = splits.train_index[:50]
        per_batch = transform(data.train_x.index_select(0, batch), True, None)
        resident = inputs.transform(inputs.train_x.index_select(0, batch), True, None)
        assert torch.equal(per_batch, resident)
        for name, (x, y) in splits.evals.items():
            assert torch.equal(inputs.evals[name][0], transform(x, False, None)), name
            assert inputs.evals[name][1] is y
    # Augmentation draws per batch: never precomputed; nor a copy over the memory budget.
    augmented = KIND.input_transform(data.train_x, {"input": {"augment": "flip"}})
    assert batches.resident_inputs(augmented, data.train_x, splits, 1).train_x is data.train_x
    unit = KIND.input_transform(data.train_x, {})
    # A job reading fewer images than are stored (a subset for an epoch) does not pay for it.
    subset = batches.make_splits(data, {"subset": {"train": 100}}, torch.device("cpu"))
    assert batches.resident_inputs(unit, data.train_x, subset, 1).train_x is data.train_x
    assert batches.resident_inputs(unit, data.train_x, subset, 10).train_x is not data.train_x
    monkeypatch.setattr(batches, "RESIDENT_BYTES", 1000)
    assert batches.resident_inputs(unit, data.train_x, splits, 1).train_x is data.train_x


@pytest.mark.parametrize("stacked", [False, True], ids=["single", "stacked"])
def test_float64_runs_in_float64_throughout_and_says_so(cache, tmp_path, stacked):
    """``performance.dtype: float64``: parameters, inputs, optimizer state and metrics in
    float64 (the precision of the equality tests, tests/test_stacked.py), recorded in
    run.json; the same run as float32 up to float32 rounding, not bit for bit. One epoch
    transforms each batch, two use the resident copy (``batches.resident_inputs``)."""
    from amsgrad_repro.train.stacked import Member, StackedRequest, StackedTrainer

    def job(dtype: str):
        changes = {"performance": {"dtype": dtype}, "epochs": 2 if stacked else 1}
        root = tmp_path / dtype
        if not stacked:
            return Trainer(request(cache, root, **changes))
        members = [Member(seed, root / str(seed)) for seed in (0, 1)]
        return StackedTrainer(
            StackedRequest(
                "toy", "amsgrad", members, task_settings(**changes), cache, root / "ckpt", "cpu"
            )
        )

    tables = {}
    for dtype in ("float32", "float64"):
        trainer = job(dtype)
        resident = trainer.inputs.train_x.is_floating_point()
        assert resident == stacked
        batch = trainer.inputs.transform(trainer.inputs.train_x[:2], True, None)
        assert batch.dtype == getattr(torch, dtype)
        evals = trainer.inputs.evals.values()
        assert {trainer.inputs.transform(x[:2], False, None).dtype for x, _ in evals} == {
            batch.dtype
        }
        records = trainer.run()
        record = records[0] if stacked else records
        assert record["performance"]["dtype"] == dtype
        params = list(trainer.model.parameters())
        state = trainer.optimizer.state_dict()["state"][0]
        assert {p.dtype for p in params} == {getattr(torch, dtype)}
        assert {v.dtype for v in state.values() if torch.is_tensor(v) and v.dim()} == {
            getattr(torch, dtype)
        }
        run = tmp_path / dtype / ("0" if stacked else "run")
        tables[dtype] = pd.read_csv(run / "metrics.csv")
    loss32, loss64 = (tables[d]["train_loss"].to_numpy() for d in ("float32", "float64"))
    assert not np.array_equal(loss32, loss64)
    # float32 rounding of ≤ 20 AMSGrad steps, amplified by the trajectory: measured 3.7·eps32
    # (single) and 27·eps32 (stacked, 3.3e-6), the Adam family ≤ 25·eps32 on AMD EPYC too
    # (tests/test_stacked.py); 3e-5 = 250·eps32 admits 10× that (the former 1e-4: 840·eps32).
    np.testing.assert_allclose(loss32, loss64, rtol=3e-5)


def test_dtype_is_one_of_the_declared_ones_and_the_schema_lists_the_same(repo_root):
    import yaml

    from amsgrad_repro.train.device import AUTOCASTS, DTYPES, performance_options

    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    task = schema["$defs"]["training_task"]["properties"]
    assert tuple(task["performance"]["properties"]["dtype"]["enum"]) == DTYPES
    assert performance_options({})["dtype"] == "float32"
    with pytest.raises(ValueError, match="performance.dtype: expected one of float32, float64"):
        performance_options({"performance": {"dtype": "half"}})
    assert tuple(task["performance"]["properties"]["autocast"]["enum"]) == AUTOCASTS
    assert performance_options({})["autocast"] == "none"
    with pytest.raises(ValueError, match="performance.autocast: expected one of none, bfloat16"):
        performance_options({"performance": {"autocast": "float16"}})
    with pytest.raises(ValueError, match="autocast bfloat16 needs dtype float32"):
        performance_options({"performance": {"autocast": "bfloat16", "dtype": "float64"}})


_RUN_CLI_THEN_REPORT_DYNAMO = """
import runpy, sys
if sys.argv.pop(1) == "dynamo-first":
    import torch._dynamo
try:
    runpy.run_module("amsgrad_repro.cli", run_name="__main__")
except SystemExit as stop:
    assert not stop.code, stop.code
print("dynamo imported:", "torch._dynamo" in sys.modules)
"""


def test_a_job_that_compiles_nothing_skips_dynamo_and_computes_the_same(tmp_path):
    """``device.optimizers_without_dynamo``: a native optimizer's job never imports
    ``torch._dynamo`` (2.3 s per process), and its run equals one where dynamo was loaded
    first, so torch's own ``_disable_dynamo`` wrappers ran."""
    cache = write_miniature(tmp_path / "data", n_train=96, n_test=32, n_val=32)
    settings = task_settings(epochs=2)
    outputs = {}
    for order in ("as-a-job", "dynamo-first"):
        root = tmp_path / order
        command = [
            sys.executable, "-c", _RUN_CLI_THEN_REPORT_DYNAMO, order, "train", "--task", "toy",
            "--optimizer", "amsgrad", "--seed", "1", "--settings", json.dumps(settings),
            "--dataset-cache", str(cache), "--out", str(root / "run"),
            "--checkpoint-dir", str(root / "ckpt"), "--device", "cpu", "--threads", "1",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[order] = done.stdout
    assert "dynamo imported: False" in outputs["as-a-job"], outputs["as-a-job"][-2000:]
    assert "dynamo imported: True" in outputs["dynamo-first"]
    a, b = metrics(tmp_path / "as-a-job" / "run"), metrics(tmp_path / "dynamo-first" / "run")
    pd.testing.assert_frame_equal(
        a.drop(columns="wall_time", errors="ignore"),
        b.drop(columns="wall_time", errors="ignore"),
        check_exact=True,
    )
