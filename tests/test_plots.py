"""Figures: every legend entry stays visible when curves coincide, iteration axes have
integer ticks, and a task whose runs all diverged draws a panel that says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amsgrad_repro.plots import DPI, optimizer_styles, styles_for
from amsgrad_repro.train.figure import build_training_figure

TASK = {
    "kind": "classifier",
    "dataset": "fashion_mnist",
    "model": {"arch": "mlp"},
    "hparams": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999},
    "batch_size": 128,
    "epochs": 1,
}
IDENTICAL = ("adam", "amsgrad", "torch-adam", "torch-amsgrad")


def aggregate(optimizers, steps=(4, 8), mean=lambda s: 1.0 / s) -> pd.DataFrame:
    rows = [
        {"optimizer": o, "step": s, "metric": m, "mean": mean(s), "median": mean(s),
         "lo": mean(s) * 0.9, "hi": mean(s) * 1.1, "n": 2}
        for o in optimizers for s in steps
        for m in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
    ]  # fmt: skip
    return pd.DataFrame(rows)


def records(optimizers, status="completed"):
    return [
        {"optimizer": o, "seed": s, "status": status, "diverged_at_step": 4}
        for o in optimizers
        for s in (0, 1)
    ]


def test_styles_are_distinct_for_many_optimizers_and_stable_across_figures():
    names = [f"opt{i}" for i in range(16)]
    styles = optimizer_styles(names)
    looks = [(s.colour, s.linestyle, s.marker) for s in styles.values()]
    assert len(set(looks)) == 16
    for a, b in zip(names, names[1:], strict=False):
        assert styles[a].linestyle != styles[b].linestyle and styles[a].marker != styles[b].marker
    # The same optimizer looks the same whatever else a figure shows.
    assert styles_for(["torch-amsgrad"])["torch-amsgrad"] == styles_for(IDENTICAL)["torch-amsgrad"]


def test_coinciding_curves_each_keep_a_visible_distinct_legend_entry():
    fig = build_training_figure("mlp", aggregate(IDENTICAL), TASK, records(IDENTICAL))
    handles, labels = fig.axes[0].get_legend_handles_labels()
    assert labels == list(IDENTICAL)
    looks = {(tuple(h.get_color()), h.get_linestyle(), h.get_marker()) for h in handles}
    assert len(looks) == len(IDENTICAL)
    assert all(h.get_marker() not in (None, "", "None") for h in handles)
    # Markers of the identical curves sit at different points, so each shows.
    assert len({str(h.get_markevery()) for h in handles}) == len(IDENTICAL)


def test_iteration_axes_have_integer_ticks():
    fig = build_training_figure("mlp", aggregate(("adam",), steps=(4, 8)), TASK, records(["adam"]))
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = ax.get_xticks()
        # k·step rounds by ulps; a fractional tick is ≥ 0.1 off (allclose's rtol of 1e-5
        # admitted 0.1 at a tick of 10^4)
        assert len(ticks) and np.allclose(ticks, np.round(ticks), rtol=0, atol=1e-9), ticks


def test_all_diverged_task_draws_a_clear_panel_not_empty_axes():
    table = aggregate(("adam", "amsgrad"), mean=lambda s: float("nan"))
    runs = records(("adam", "amsgrad"), status="diverged")
    fig = build_training_figure("mlp", table, TASK, runs)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(texts) == 4 and all("all 4 runs diverged at step 4" in t for t in texts), texts
    assert not any(ax.lines for ax in fig.axes)


# --- outputs that tell the truth at a glance (issue 17) ----------------------------------

RED = "firebrick"
SYNTHETIC = {"synthetic_online": "online", "synthetic_stochastic": "stochastic"}


def footer_texts(fig) -> list[str]:
    """The red notes under a figure (figure-level texts, not titles)."""
    return [t.get_text() for t in fig.texts if t.get_color() == RED]


def synthetic_inputs(steps: int, paper_steps: int, half_width: float = 0.3):
    """Figure 1's inputs for two problems, two optimizers: x curves whose band of
    ``half_width`` crosses −1 and +1 near the ends, and the runs' records."""
    tables, records = {}, []
    for task, problem in SYNTHETIC.items():
        rows = []
        for optimizer, sign in (("adam", 1.0), ("amsgrad", -1.0)):
            for step in (1, 10, 100, steps):
                x = sign * (1.0 - 1.0 / step)
                for metric, value in (("x", x), ("avg_regret", 0.2 + 1.0 / step)):
                    rows.append({"optimizer": optimizer, "step": step, "metric": metric,
                                 "mean": value, "median": value, "lo": value - half_width,
                                 "hi": value + half_width, "n": 2})  # fmt: skip
            settings = {"kind": "synthetic", "problem": problem, "steps": steps, "x1": 0.0,
                        "paper": {"steps": paper_steps}}  # fmt: skip
            records += [
                {"task": task, "optimizer": optimizer, "seed": seed, "status": "completed",
                 "steps": steps, "settings": settings, "hparams": {"lr": 0.5}}
                for seed in (0, 1)
            ]  # fmt: skip
        tables[task] = pd.DataFrame(rows)
    return tables, records


def test_figure1_flags_a_shortened_run_in_red_and_only_then():
    from amsgrad_repro.synthetic.figure import build_figure1

    short = build_figure1(*synthetic_inputs(steps=200, paper_steps=10_000_000))
    assert footer_texts(short) == [
        "SHORTENED: 200 of 10000000 steps (synthetic_online, synthetic_stochastic)"
    ]
    full = build_figure1(*synthetic_inputs(steps=200, paper_steps=200))
    assert footer_texts(full) == []


def test_grid_figures_flag_a_shortened_grid(tmp_path):
    from amsgrad_repro.optimizers import BUILTINS
    from amsgrad_repro.synthetic.grid_figures import build_grid_figure
    from amsgrad_repro.synthetic.grid_spec import grid_spec
    from amsgrad_repro.synthetic.grids import run_grid

    declaration = {
        "problems": ["online"], "optimizers": ["adam", "amsgrad"],
        "hparams": {"lr": 0.5, "lr_schedule": "inv_sqrt"},
        "axes": {"beta1": {"values": [0.0, 0.9]}, "beta2": [{"values": [0.9, 0.999]}]},
        "steps": 50, "max_steps": 400, "x1": 0.0, "record_points": 10, "success_radius": 0.1,
        "figure": {"type": "heatmap", "x": "beta2", "y": "beta1", "curve": "beta1_sqrt_beta2"},
    }  # fmt: skip
    quartiles = {
        "figure": {"type": "quartiles", "panels": "beta1"},
        "axes": {"beta1": {"values": [0.0, 0.9]}, "beta2": [{"values": [0.99]}]},
    }
    for kind in ({}, quartiles):
        for paper, flag in (({"steps": 1000}, ["SHORTENED: 50 of 1000 steps"]), ({}, [])):
            grid = grid_spec("g", {**declaration, **kind, "paper": paper}, [0], BUILTINS)
            fig = build_grid_figure(grid, run_grid(grid, BUILTINS, threads=1).table)
            assert footer_texts(fig) == flag, (grid.figure["type"], paper)
            assert_legends_cover_no_panel(fig)


def band_limits(ax) -> tuple[float, float]:
    """The lowest and highest y of every band (PolyCollection) drawn on ``ax``."""
    from matplotlib.collections import PolyCollection

    ys = [
        path.vertices[:, 1]
        for c in ax.collections
        if isinstance(c, PolyCollection)
        for path in c.get_paths()
    ]
    values = np.concatenate(ys)
    return float(values.min()), float(values.max())


def test_bands_stay_within_what_the_metric_can_be_and_say_they_were_clipped():
    # Loss 0.05 ± 0.2 and accuracy 0.99 ± 0.05: unclipped, bands below 0 and above 1.
    table = aggregate(("adam", "amsgrad"), mean=lambda s: 0.05)
    accuracy = table["metric"].str.endswith("accuracy")
    table.loc[accuracy, "mean"] = 0.99
    table["lo"], table["hi"] = table["mean"] - 0.2, table["mean"] + 0.2
    table.loc[accuracy, "lo"], table.loc[accuracy, "hi"] = 0.94, 1.04
    fig = build_training_figure("mlp", table, TASK, records(["adam", "amsgrad"]))
    for ax in fig.axes[:4]:
        low, high = band_limits(ax)
        if "accuracy" in ax.get_title():
            assert (low, high) == (0.94, 1.0) and "(band clipped at 1)" in ax.get_title()
        else:
            assert low == 0.0 and high == pytest.approx(0.25, rel=1e-12)  # 0.05 + 0.2
            assert "clipped at 0" in ax.get_title()
    # Figure 1's iterate lies in F = [−1, 1]; R_t/t has no bound to clip at.
    from amsgrad_repro.synthetic.figure import build_figure1

    fig = build_figure1(*synthetic_inputs(steps=200, paper_steps=200))
    for ax in fig.axes:
        low, high = band_limits(ax)
        if "iterate" in ax.get_title():
            assert low >= -1.0 and high <= 1.0 and "(band clipped at -1 and 1)" in ax.get_title()
        else:
            assert low < 0.0 and "clipped" not in ax.get_title()  # 0.2 + 1/t − 0.3


def test_a_band_inside_its_range_is_left_alone():
    from amsgrad_repro.plots import clipped_band

    lo, hi, note = clipped_band("test_accuracy", [0.5, 0.6], [0.7, 0.8])
    assert note == "" and list(lo) == [0.5, 0.6] and list(hi) == [0.7, 0.8]
    lo, hi, note = clipped_band("val_loss", [-0.1, 0.2], [0.3, 0.4])
    assert note == "band clipped at 0" and list(lo) == [0.0, 0.2]
    assert clipped_band("avg_regret", [-5.0], [5.0])[2] == ""


def assert_legends_cover_no_panel(fig) -> None:
    fig.canvas.draw()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends, "no legend drawn"
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent()), (legend, ax.get_title())


def test_legends_cover_no_panel():
    from amsgrad_repro.synthetic.figure import build_figure1

    many = [f"plugin-{i}" for i in range(6)] + list(IDENTICAL)
    assert_legends_cover_no_panel(
        build_training_figure("mlp", aggregate(many), TASK, records(many))
    )
    assert_legends_cover_no_panel(build_figure1(*synthetic_inputs(steps=200, paper_steps=200)))
    from amsgrad_repro.tuning.figure import build_sensitivity_figure

    grid = pd.DataFrame(
        [{"optimizer": o, "beta2": b, "lr": lr, "seed": s, "value": 0.02 + 0.03 * s,
          "status": "completed", "metric": "val_loss"}
         for o in ("adam", "amsgrad") for b in (0.99, 0.999) for lr in (0.001, 0.01)
         for s in range(3)]
    )  # fmt: skip
    fig = build_sensitivity_figure("logreg", grid, TASK, 1)
    assert_legends_cover_no_panel(fig)
    assert "interval clipped at 0" in fig.axes[0].get_title()  # 3 seeds: 0.05 ± 0.075


def png_size(fig) -> tuple[int, int]:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=DPI)
    return Image.open(io.BytesIO(buffer.getvalue())).size


def test_a_long_footer_wraps_instead_of_widening_the_figure():
    names = [f"a-plug-in-with-a-rather-long-name-{i}" for i in range(6)]
    table = aggregate(names)
    quiet = build_training_figure("mlp", table, TASK, records(names))
    width, height = png_size(quiet)
    loud = build_training_figure("mlp", table, TASK, records(names, status="diverged"))
    (note,) = footer_texts(loud)
    assert note.count("\n") >= 1 and all(f"{n} 2/2" in note for n in names)  # every run listed
    loud_width, loud_height = png_size(loud)
    assert loud_width == width and loud_height > height
    loud.canvas.draw()
    (text,) = [t for t in loud.texts if t.get_color() == RED]
    assert text.get_window_extent().width <= loud.bbox.width


def test_one_epoch_is_singular():
    fig = build_training_figure("mlp", aggregate(("adam",)), TASK, records(["adam"]))
    assert "1 epoch, 2 seeds" in fig._suptitle.get_text()
    from amsgrad_repro.formatting import plural
    from amsgrad_repro.reduction import reduction

    assert plural(1, "epoch") == "1 epoch" and plural(10_000_000, "step") == "10000000 steps"
    assert reduction({"epochs": 1}).length == "1 epoch"
    assert reduction({"epochs": 1, "paper": {"epochs": 1}}).length == "1 of 1 epoch"
