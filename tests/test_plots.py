"""Figures: every legend entry stays visible when curves coincide, iteration axes have
integer ticks, and a task whose runs all diverged draws a panel that says so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amsgrad_repro.plots import optimizer_styles, styles_for
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
        assert len(ticks) and np.allclose(ticks, np.round(ticks)), ticks


def test_all_diverged_task_draws_a_clear_panel_not_empty_axes():
    table = aggregate(("adam", "amsgrad"), mean=lambda s: float("nan"))
    runs = records(("adam", "amsgrad"), status="diverged")
    fig = build_training_figure("mlp", table, TASK, runs)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(texts) == 4 and all("all 4 runs diverged at step 4" in t for t in texts), texts
    assert not any(ax.lines for ax in fig.axes)
