"""DeepOBS's quadratic_deep as a task: its generated dataset through the data stage (no
download, no DVC), the ``quadratic`` kind through the real training engine, and the
configuration that declares both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from amsgrad_repro.config import ConfigError, load
from amsgrad_repro.data import load_cache
from amsgrad_repro.data.generated import GENERATORS, deepobs_quadratic
from amsgrad_repro.data.prepare import prepare
from amsgrad_repro.train.engine import RunRequest, train
from amsgrad_repro.train.models.deepobs import quadratic_hessian
from tests.test_train import write_miniature

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
SPEC = SHIPPED["datasets"]["deepobs_quadratic"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quadratic")
    out = root / "data" / "cache" / "deepobs_quadratic.pt"
    out.parent.mkdir(parents=True)
    prepare(root, "deepobs_quadratic", SPEC, out)
    return out


def test_the_data_stage_writes_deepobs_points_without_fetching(cache):
    """The cache holds DeepOBS's draws exactly (RandomState 42 for training, 43 for
    test, N(0, 0.6²) in 100 dimensions, float32), no validation split, zero labels; the
    meta names the generator instead of raw files, and nothing went to data/raw."""
    data = load_cache(cache)
    rng = np.random.RandomState(42)
    np.testing.assert_array_equal(
        data.train_x.numpy(), np.float32(rng.normal(0.0, 0.6, (1000, 100)))
    )
    np.testing.assert_array_equal(
        data.test_x.numpy(), np.float32(np.random.RandomState(43).normal(0.0, 0.6, (1000, 100)))
    )
    assert data.val_index.numel() == 0 and not data.train_y.any() and not data.test_y.any()
    meta = data.meta
    assert meta["generator"] == "deepobs_quadratic" and meta["parameters"]["dim"] == 100
    assert meta["image_shape"] == [100] and meta["num_train"] == meta["num_test"] == 1000
    assert not (cache.parents[2] / "data" / "raw").exists()


def test_a_second_generation_is_identical(cache, tmp_path):
    again = tmp_path / "again.pt"
    prepare(tmp_path, "deepobs_quadratic", SPEC, again)
    assert load_cache(again).content_sha256 == load_cache(cache).content_sha256


def test_expected_counts_are_checked(tmp_path):
    spec = {**SPEC, "expected": {**SPEC["expected"], "num_train": 999}}
    with pytest.raises(ValueError, match="1000 train points, expected 999"):
        prepare(tmp_path, "deepobs_quadratic", spec, tmp_path / "q.pt")
    assert not (tmp_path / "q.pt").exists()


def quadratic_request(cache: Path, root: Path, optimizer: str, **changes) -> RunRequest:
    settings = {
        **SHIPPED["tasks"]["quadratic_deep"],
        "epochs": 20,
        "hparams": {**SHIPPED["tasks"]["quadratic_deep"]["hparams"], "lr": 0.05},
        **changes,
    }
    return RunRequest(
        task="quadratic_deep",
        optimizer=optimizer,
        seed=0,
        settings=settings,
        dataset_cache=cache,
        out_dir=root / "run",
        checkpoint_dir=root / "ckpt",
        device="cpu",
    )


def test_optimizers_approach_the_test_minimum_and_never_pass_it(cache, tmp_path):
    """The test loss ½ mean (θ − x)ᵀQ(θ − x) over the test points is smallest at θ = their
    mean, so no recorded test loss may lie below that minimum (float32 rounding of a
    1000-point mean of sums of 100 products is below 1e-5 relative); from θ = 1 (loss 354)
    Adam and AMSGrad at α 0.05 get within 5% of it in 20 epochs (160 steps)."""
    hessian = quadratic_hessian()
    test = np.float64(deepobs_quadratic().test_x)
    centred = test - test.mean(0)
    floor = 0.5 * np.mean(np.einsum("bi,ij,bj->b", centred, hessian, centred))
    start = 0.5 * np.mean(np.einsum("bi,ij,bj->b", 1 - test, hessian, 1 - test))
    assert floor < 0.3 * start  # 87 against 354: reaching the floor is real progress
    for optimizer in ("adam", "amsgrad"):
        record = train(quadratic_request(cache, tmp_path / optimizer, optimizer))
        table = pd.read_csv(tmp_path / optimizer / "run" / "metrics.csv")
        columns = ["step", "epoch", "train_loss", "test_loss", "lr", "wall_time"]
        assert list(table.columns) == columns
        assert record["status"] == "completed" and record["steps"] == 160
        assert (table["test_loss"] >= floor * (1 - 1e-5)).all(), (table["test_loss"].min(), floor)
        assert table["test_loss"].iloc[-1] < 1.05 * floor
        saved = json.loads((tmp_path / optimizer / "run" / "run.json").read_text())
        assert saved["data"]["meta"]["generator"] == "deepobs_quadratic"


def test_the_kind_refuses_image_data(tmp_path):
    images = write_miniature(tmp_path / "images")
    with pytest.raises(ValueError, match="format: generated"):
        train(quadratic_request(images, tmp_path, "adam", epochs=1))


def test_the_schema_lists_the_generators_and_requires_one(tmp_path):
    schema = yaml.safe_load((REPO_ROOT / "workflow/schemas/config.schema.yaml").read_text())
    dataset = schema["$defs"]["dataset"]
    assert dataset["properties"]["generator"]["enum"] == list(GENERATORS)
    config = dict(SHIPPED, datasets={**SHIPPED["datasets"]})
    config["datasets"]["deepobs_quadratic"] = {k: v for k, v in SPEC.items() if k != "generator"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="generator"):
        load(path)
    # A downloaded format still needs its sources and files.
    config["datasets"]["deepobs_quadratic"] = {**SPEC, "format": "idx"}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="sources"):
        load(path)


def test_deep_presets_run_it_and_the_others_do_not():
    def task(scale: str) -> dict:
        return load(REPO_ROOT / "config.yaml", {"scale": scale})["tasks"]["quadratic_deep"]

    assert task("deep_quick")["epochs"] == 100 and task("deep_quick").get("enabled", True)
    assert task("quick")["enabled"] is False and task("smoke")["enabled"] is False
