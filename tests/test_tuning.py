"""The tuning stage: grid settings, selection on the validation split, robustness, the
sensitivity figure, and replicated runs that really train with the selection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amsgrad_repro import layout
from amsgrad_repro.cli import main
from amsgrad_repro.config import ConfigError, load
from amsgrad_repro.tuning import grid as tuning_grid
from amsgrad_repro.tuning import select
from tests.test_train import task_settings, write_miniature


def grid_frame(values: dict[tuple[str, float, float], list[float]]) -> pd.DataFrame:
    """Grid runs: {(optimizer, lr, beta2): [val_loss per seed]}; NaN = diverged seed."""
    rows = [
        {
            "task": "logreg",
            "optimizer": opt,
            "lr": lr,
            "beta2": beta2,
            "seed": seed,
            "status": "diverged" if math.isnan(v) else "completed",
            "metric": "val_loss",
            "value": v,
        }
        for (opt, lr, beta2), seeds in values.items()
        for seed, v in enumerate(seeds)
    ]
    return pd.DataFrame(rows, columns=select.grid_columns(["lr", "beta2"]))


def test_point_names_round_trip_exactly():
    """A point's folder spells its axes in layout.TUNED_AXES order and reads back to the
    same floats; the weight-decay axis appears only in grids that tune it."""
    for lr, beta2 in ((0.001, 0.999), (1e-05, 0.99), (0.0012345678901, 0.9995)):
        name = layout.point_name({"beta2": beta2, "lr": lr})
        parsed_lr, parsed_beta2 = name.removeprefix("lr").split("_beta2")
        assert (float(parsed_lr), float(parsed_beta2)) == (lr, beta2)
        assert layout.parse_point(name) == {"lr": lr, "beta2": beta2}
        decayed = {"lr": lr, "beta2": beta2, "weight_decay": 0.05}
        assert layout.point_name(decayed) == f"{name}_weight_decay0.05"
        assert layout.parse_point(layout.point_name(decayed)) == decayed
    for name in ("beta20.9", "lr0.1beta20.9", "lr0.1_beta20.9_weight_decay", "lr0.1_beta20.9_x1"):
        assert layout.parse_point(name) is None
    with pytest.raises(KeyError, match="not a tuning axis: beta1"):
        layout.point_name({"lr": 0.1, "beta2": 0.9, "beta1": 0.5})


def test_grid_points_cover_every_axis_and_a_weight_decay_axis_unstacks():
    """α × β2 × λ in that order (the first axis outermost); only α and β2 may differ across
    the members of one stacked job, so a grid tuning λ runs a job per point × seed."""
    grid = {"lr": [0.1, 0.01], "beta2": [0.999], "weight_decay": [0.0, 0.05]}
    assert tuning_grid.grid_points(grid) == [
        {"lr": 0.1, "beta2": 0.999, "weight_decay": 0.0},
        {"lr": 0.1, "beta2": 0.999, "weight_decay": 0.05},
        {"lr": 0.01, "beta2": 0.999, "weight_decay": 0.0},
        {"lr": 0.01, "beta2": 0.999, "weight_decay": 0.05},
    ]
    assert not tuning_grid.stacks_members(grid)
    assert tuning_grid.stacks_members({"lr": [0.1], "beta2": [0.9]})


def test_an_optimizer_may_have_its_own_values_of_the_grids_axes(repo_root):
    """``overrides`` replaces an axis's values for one optimizer (SGD's α and L2 on the
    ResNets) and nothing else: the others keep the entry's values, every optimizer the same
    axes; the report says which grid each optimizer ran, and the plan's jobs follow it."""
    from amsgrad_repro.analysis.tables import tuning_section
    from amsgrad_repro.plan import plan

    grid = {
        "optimizers": ["adam", "sgd-nesterov"],
        "lr": [0.001, 0.003],
        "weight_decay": [0.05],
        "overrides": {"sgd-nesterov": {"lr": [0.1]}},
    }
    assert tuning_grid.grid_points(grid, "adam") == [
        {"lr": 0.001, "weight_decay": 0.05},
        {"lr": 0.003, "weight_decay": 0.05},
    ]
    assert tuning_grid.grid_points(grid, "sgd-nesterov") == [{"lr": 0.1, "weight_decay": 0.05}]
    assert tuning_grid.spoken_grid(grid) == (
        "α ∈ [0.001, 0.003] × λ ∈ [0.05] for adam; α ∈ [0.1] × λ ∈ [0.05] for sgd-nesterov"
    )
    deep = load(repo_root / "config.yaml", {"scale": "deep"})
    resnet = tuning_grid.tuned_tasks(deep)["resnet20_fmnist"]
    assert resnet["optimizers"] == [
        "adam", "amsgrad", "sgd-nesterov", "adopt", "adabelief", "yogi", "amsbound", "padam"
    ]  # fmt: skip
    padam = tuning_grid.grid_points(resnet, "padam")
    assert {(p["lr"], p["weight_decay"]) for p in padam} == {
        (lr, wd) for lr in (0.03, 0.1, 0.3) for wd in (0.0001, 0.0005, 0.002)
    }
    sgd = tuning_grid.grid_points(resnet, "sgd-nesterov")
    assert {p["lr"] for p in sgd} == {0.03, 0.1, 0.3}
    assert {p["weight_decay"] for p in sgd} == {0.0001, 0.0005, 0.001}
    assert {p["lr"] for p in tuning_grid.grid_points(resnet, "adopt")} == {0.0003, 0.001, 0.003}
    assert "sgd-nesterov" in tuning_section(deep)
    runs = {
        Path(f).parent.parent.name
        for job in plan(deep).jobs
        if job.rule == "tune_run"
        for f in job.outputs
        if "/resnet20_fmnist/sgd-nesterov/" in f
    }
    assert runs == {layout.point_name(p) for p in sgd}


def test_grid_settings_change_only_this_optimizer():
    task = {
        "optimizers": ["adam", "amsgrad"],
        "hparams": {"lr": 0.01, "lr_schedule": "inv_sqrt", "beta1": 0.9, "beta2": 0.999},
        "overrides": {"amsgrad": {"beta1": 0.8, "beta2": 0.99}},
        "epochs": 100,
    }
    point = tuning_grid.grid_settings(task, "amsgrad", {"lr": 0.03, "beta2": 0.9}, epochs=5)
    assert point["overrides"]["amsgrad"] == {"lr": 0.03, "beta1": 0.8, "beta2": 0.9}
    assert point["hparams"] == task["hparams"] and "adam" not in point["overrides"]
    assert point["epochs"] == 5 and task["epochs"] == 100


def test_selection_takes_the_best_mean_and_never_a_point_that_diverged():
    grid = grid_frame(
        {
            ("adam", 0.001, 0.999): [0.50, 0.52],
            ("adam", 0.01, 0.999): [0.30, math.nan],  # best seed, but diverged on the other
            ("adam", 0.01, 0.99): [0.40, 0.42],
            ("adam", 0.1, 0.99): [0.40, 0.42],  # a tie: the first point in grid order wins
        }
    )
    chosen = select.select(grid, "adam")
    assert chosen["selected"] == {"lr": 0.01, "beta2": 0.99}
    assert chosen["score"] == pytest.approx(0.41, rel=1e-12)  # a mean of 2: ≤ 2 ulps
    diverged = {(p["lr"], p["beta2"]): p["diverged"] for p in chosen["points"]}
    assert diverged[(0.01, 0.999)] == 1


def test_accuracy_metrics_are_maximised():
    grid = grid_frame({("adam", 0.001, 0.999): [0.8], ("adam", 0.01, 0.999): [0.9]})
    grid["metric"] = "val_accuracy"
    assert select.select(grid, "adam")["selected"]["lr"] == 0.01


def test_sensitivity_is_the_mean_excess_over_the_best_point():
    grid = grid_frame(
        {
            ("adam", 0.001, 0.999): [0.5, 0.5],
            ("adam", 0.01, 0.999): [0.3, 0.3],
            ("adam", 0.1, 0.999): [math.nan, 1.3],  # seed 0 diverged: counts as worst, 0.6
            ("amsgrad", 0.001, 0.999): [0.4, 0.4],
            ("amsgrad", 0.01, 0.999): [0.3, 0.3],
            ("amsgrad", 0.1, 0.999): [0.6, 0.6],
        }
    )
    table = select.sensitivity(grid).set_index(["optimizer", "seed"])["value"]
    # means of 3 differences of decimals: ≲ 10 ulps of the result, so rel=1e-12
    assert table[("adam", 0)] == pytest.approx((0.2 + 0.0 + 0.3) / 3, rel=1e-12)
    assert table[("adam", 1)] == pytest.approx((0.2 + 0.0 + 1.0) / 3, rel=1e-12)
    assert table[("amsgrad", 0)] == pytest.approx((0.1 + 0.0 + 0.3) / 3, rel=1e-12)


@pytest.mark.parametrize(
    ("tuning_section", "task_change", "message"),
    [
        ({"synthetic_online": {"lr": [0.1], "beta2": [0.9]}}, {}, "not a training task"),
        ({"logreg": {"lr": [0.1], "beta2": [0.9]}}, {"holdout_val": False}, "holdout_val"),
        (
            {"logreg": {"optimizers": ["sgd"], "lr": [0.1], "beta2": [0.9]}},
            {"optimizers": ["adam", "sgd"]},
            "no tunable beta2",
        ),
        (
            {"logreg": {"optimizers": ["rmsprop"], "lr": [0.1], "beta2": [0.9]}},
            {},
            "not run by task",
        ),
        (
            {"logreg": {"optimizers": ["adam"], "lr": [0.1], "overrides": {"amsgrad": {}}}},
            {},
            r"overrides: 'amsgrad' is not tuned here",
        ),
        (
            {"logreg": {"lr": [0.1], "overrides": {"adam": {"weight_decay": [0.1]}}}},
            {},
            r"overrides.adam: weight_decay is not an axis of this grid \(lr, beta2\)",
        ),
    ],
)
def test_tuning_config_errors_name_the_key(repo_root, tuning_section, task_change, message):
    """config.resolve calls check_tuning: the error comes while loading."""
    overrides = {
        "tune": True,
        "tuning": {"tasks": tuning_section},
        "tasks": {"logreg": task_change},
    }
    with pytest.raises(ConfigError, match=message):
        tuning_grid.check_tuning(load(repo_root / "config.yaml", overrides))


def test_tuning_is_off_unless_asked(repo_root):
    assert tuning_grid.tuned_tasks(load(repo_root / "config.yaml")) == {}
    on = tuning_grid.tuned_tasks(load(repo_root / "config.yaml", {"tune": True, "scale": "smoke"}))
    assert set(on) == {"logreg", "mlp"} and on["logreg"]["epochs"] == 1
    assert on["logreg"]["optimizers"] == ["adam", "amsgrad"]


# --- the stage end to end on real (tiny) training runs --------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return write_miniature(tmp_path_factory.mktemp("data") / "miniature")


def train(cache: Path, out: Path, optimizer: str, seed: int, settings: dict, *extra: str) -> dict:
    argv = ["train", "--task", "toy", "--optimizer", optimizer, "--seed", str(seed)]
    argv += ["--settings", json.dumps(settings), "--dataset-cache", str(cache)]
    argv += ["--out", str(out), "--checkpoint-dir", str(out) + ".ckpt", "--device", "cpu"]
    argv += ["--progress", "off", *extra]
    assert main(argv) == 0
    return json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def grid_runs(cache, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("tuning")
    base = task_settings(epochs=1, optimizers=["adam", "amsgrad"])
    files = []
    for optimizer in ("adam", "amsgrad"):
        for lr in (0.001, 0.03):
            for seed in (0, 1):
                point = {"lr": lr, "beta2": 0.99}
                settings = tuning_grid.grid_settings(base, optimizer, point, epochs=1)
                out = root / optimizer / layout.point_name(point) / str(seed)
                train(cache, out, optimizer, seed, settings)
                files.append(out / "run.json")
    return files


def test_select_and_sensitivity_commands_on_real_runs(grid_runs, tmp_path):
    base = task_settings(epochs=1, optimizers=["adam", "amsgrad"])
    runs = [str(p) for p in grid_runs if "/adam/" in str(p)]
    out = tmp_path / "adam.json"
    argv = ["tune-select", "--task", "toy", "--optimizer", "adam"]
    argv += ["--runs", *runs, "--out", str(out)]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    grid = select.load_grid(runs, "val_loss")
    means = grid.groupby("lr")["value"].mean()
    assert record["selected"] == {"lr": float(means.idxmin()), "beta2": 0.99}
    assert record["score"] == pytest.approx(means.min(), rel=1e-12) and record["seeds"] == [0, 1]

    figure = [tmp_path / "sens.png", tmp_path / "sens.pdf"]
    argv = ["sensitivity", "--task", "toy", "--settings", json.dumps(base), "--epochs", "1"]
    argv += ["--runs", *map(str, grid_runs), "--grid-out", str(tmp_path / "grid.csv")]
    argv += ["--sensitivity-out", str(tmp_path / "sens.csv"), "--figure", *map(str, figure)]
    assert main(argv) == 0
    assert all(path.stat().st_size > 5000 for path in figure)
    table = pd.read_csv(tmp_path / "sens.csv")
    assert len(table) == 4 and (table["value"] >= 0).all()
    assert set(table.columns) >= {"task", "optimizer", "seed", "statistic", "metric", "value"}


def test_replicated_run_trains_with_the_selection(cache, tmp_path):
    """--hparams-file gives the same run as configuring those values directly."""
    base = task_settings(epochs=1)
    selection = tmp_path / "amsgrad.json"
    selection.write_text(
        json.dumps({"optimizer": "amsgrad", "selected": {"lr": 0.003, "beta2": 0.95}})
    )
    tuned = train(cache, tmp_path / "tuned", "amsgrad", 0, base, "--hparams-file", str(selection))
    direct_settings = {**base, "overrides": {"amsgrad": {"lr": 0.003, "beta2": 0.95}}}
    train(cache, tmp_path / "direct", "amsgrad", 0, direct_settings)
    assert tuned["hparams"]["lr"] == 0.003 and tuned["hparams"]["beta2"] == 0.95
    columns = ["step", "train_loss", "val_loss", "test_loss"]
    np.testing.assert_array_equal(
        pd.read_csv(tmp_path / "tuned/metrics.csv")[columns],
        pd.read_csv(tmp_path / "direct/metrics.csv")[columns],
    )
    untuned = train(cache, tmp_path / "untuned", "amsgrad", 0, base)
    assert untuned["hparams"]["lr"] == 0.01


def test_selection_for_another_optimizer_is_refused(cache, tmp_path):
    selection = tmp_path / "adam.json"
    selection.write_text(json.dumps({"optimizer": "adam", "selected": {"lr": 0.003}}))
    argv = ["train", "--task", "toy", "--optimizer", "amsgrad", "--seed", "0"]
    argv += ["--settings", json.dumps(task_settings()), "--dataset-cache", str(cache)]
    argv += ["--out", str(tmp_path / "run"), "--hparams-file", str(selection)]
    assert main(argv) == 2


def test_grid_without_a_validation_split_is_an_error(cache, tmp_path):
    settings = task_settings(epochs=1, holdout_val=False)
    train(cache, tmp_path / "run", "adam", 0, settings)
    with pytest.raises(ConfigError, match="trained on its validation split"):
        select.load_grid([tmp_path / "run/run.json"], "val_loss")


def test_untuned_task_may_train_on_its_validation_split(repo_root):
    """holdout_val: false is refused only where the task is tuned in this run."""
    untuned = load(repo_root / "config.yaml", {"tasks": {"logreg": {"holdout_val": False}}})
    tuning_grid.check_tuning(untuned)
    tuned = {"tune": True, "tasks": {"logreg": {"holdout_val": False}}}
    with pytest.raises(ConfigError, match="holdout_val"):  # raised by load (config.resolve)
        tuning_grid.check_tuning(load(repo_root / "config.yaml", tuned))


def test_a_weight_decay_grid_selects_and_applies_its_decay(cache, tmp_path):
    """A grid over α and λ on real runs (AdamW-form Adam, decoupled decay): the selection
    names the best point's α, β2 and λ, a replicated run with it equals one configured
    with those values, and a run whose record disagrees with its folder is refused."""
    base = task_settings(epochs=1, optimizers=["adam"], hparams={"lr": 0.01})
    runs = []
    for weight_decay in (0.0, 0.5):
        point = {"lr": 0.01, "beta2": 0.99, "weight_decay": weight_decay}
        settings = tuning_grid.grid_settings(base, "adam", point, epochs=1)
        for seed in (0, 1):
            out = tmp_path / "adam" / layout.point_name(point) / str(seed)
            train(cache, out, "adam", seed, settings)
            runs.append(out / "run.json")
    grid = select.load_grid(runs, "val_loss")
    assert list(grid.columns[2:5]) == ["lr", "beta2", "weight_decay"]
    record = select.selection_record(grid, "toy", "adam")
    means = grid.groupby("weight_decay")["value"].mean()
    best = float(means.idxmin())
    assert record["selected"] == {"lr": 0.01, "beta2": 0.99, "weight_decay": best}
    assert means[0.0] != means[0.5]  # the decay changed the runs
    selection = tmp_path / "adam.json"
    selection.write_text(json.dumps({"optimizer": "adam", **record}, default=str))
    tuned = train(cache, tmp_path / "tuned", "adam", 0, base, "--hparams-file", str(selection))
    assert tuned["hparams"]["weight_decay"] == best
    # A run whose recorded decay is not its folder's point.
    wrong = tmp_path / "adam" / layout.point_name({"lr": 0.01, "beta2": 0.99, "weight_decay": 0.2})
    (wrong / "0").mkdir(parents=True)
    (wrong / "0" / "run.json").write_text(runs[0].read_text())
    with pytest.raises(ConfigError, match="its folder is the point"):
        select.load_grid([wrong / "0" / "run.json"], "val_loss")


def test_the_schema_declares_the_axes_layout_spells(repo_root):
    """The schema's tuning grid has every axis of layout.TUNED_AXES, requiring exactly the
    needed ones, and the deep preset tunes the ResNets' weight decay."""
    import yaml

    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    grid = schema["properties"]["tuning"]["properties"]["tasks"]["additionalProperties"]
    assert set(layout.TUNED_AXES) <= set(grid["properties"])
    assert grid["required"] == [axis for axis, needed in layout.TUNED_AXES.items() if needed]
    deep = tuning_grid.tuned_tasks(load(repo_root / "config.yaml", {"scale": "deep"}))
    assert deep["resnet20_fmnist"]["weight_decay"] == [0.01, 0.05, 0.2]
    assert "weight_decay" not in deep["fmnist_2c2d"]  # DeepOBS's problems decay nothing


def test_an_alpha_only_grid_keeps_each_optimizers_own_beta2(repo_root):
    """Without a beta2 axis a point is α alone (``lr0.01``): ADOPT keeps its 0.9999 and
    Nesterov SGD, which has no β2, can be tuned; a β2 axis for SGD is refused. A stacked
    task's α-only grid still stacks, its members differing in α only."""
    from amsgrad_repro.optimizers import catalogue
    from amsgrad_repro.train.jobs import tuning_jobs

    assert layout.point_name({"lr": 0.01}) == "lr0.01"
    assert layout.parse_point("lr0.01") == {"lr": 0.01}
    deep = load(repo_root / "config.yaml", {"scale": "deep"})
    grids = tuning_grid.tuned_tasks(deep)
    assert grids["fmnist_2c2d"]["optimizers"] == deep["tasks"]["fmnist_2c2d"]["optimizers"]
    assert {"adam", "amsgrad", "sgd-nesterov", "adopt", "yogi"} <= set(
        grids["fmnist_2c2d"]["optimizers"]
    )
    assert "beta2" not in grids["fmnist_2c2d"] and len(grids["fmnist_2c2d"]["lr"]) == 7
    adopt = tuning_grid.grid_settings(deep["tasks"]["fmnist_2c2d"], "adopt", {"lr": 0.01}, 20)
    assert adopt["overrides"]["adopt"] == {"beta2": 0.9999, "eps": 1e-6, "lr": 0.01}
    with pytest.raises(ConfigError, match="'sgd-nesterov' has no tunable beta2"):
        load(repo_root / "config.yaml", {"scale": "deep", "tuning": {"tasks": {
            "fmnist_2c2d": {"beta2": [0.999]}}}})  # fmt: skip
    smoke = load(repo_root / "config.yaml", {"scale": "smoke", "tune": True})
    grid = {**tuning_grid.tuned_tasks(smoke)["logreg"], "optimizers": ["adam"]}
    del grid["beta2"]
    (job,) = tuning_jobs(smoke["tasks"], {"logreg": grid}, catalogue(), [0, 1])
    assert [m.hparams for m in job.members] == [{"lr": 0.003}] * 2 + [{"lr": 0.03}] * 2
    assert job.settings["hparams"]["beta2"] == smoke["tasks"]["logreg"]["hparams"]["beta2"]
    assert job.members[0].out == "results/tuning/runs/logreg/adam/lr0.003/0"
