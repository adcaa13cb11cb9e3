"""The learning-rate sensitivity figure of a tuned task: final validation metric vs α, one
line per optimizer (colour) and value of the grid's other axes, β2 and any λ (line
style), the mean over tuning seeds with a 95% Student-t interval. The paper claims AMSGrad
is more robust to hyper-parameter changes than Adam; flat, low lines are robust ones.
Diverged grid points are listed in red."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from amsgrad_repro.formatting import plural
from amsgrad_repro.plots import (
    LINESTYLES,
    clipped_band,
    footer,
    legend_beside,
    save_figure,
    styles_for,
    themed,
    titled,
)
from amsgrad_repro.stats import interval_summary
from amsgrad_repro.tuning.grid import AXIS_SYMBOLS
from amsgrad_repro.tuning.select import point_axes


def spelled(axes: Sequence[str], values: Sequence[float]) -> str:
    """``β2=0.999, λ=0.05``: a point's values, as the legend and notes write them."""
    return ", ".join(f"{AXIS_SYMBOLS[a]}={v:g}" for a, v in zip(axes, values, strict=True))


def spoken(names: Sequence[str]) -> str:
    """``α``, ``α and β2``, ``α, β2 and λ``."""
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def point_summary(grid: pd.DataFrame) -> pd.DataFrame:
    """Mean and interval over seeds of each optimizer × point (finite seeds only), the
    other axes before α."""
    axes = [a for a in point_axes(grid) if a != "lr"] + ["lr"]
    rows = []
    for (optimizer, *values), runs in grid.groupby(["optimizer", *axes], sort=True):
        summary = interval_summary(runs["value"].to_numpy(dtype=float))
        rows.append(
            {
                "optimizer": optimizer,
                **dict(zip(axes, values, strict=True)),
                "mean": summary.mean[0],
                "lo": summary.lo[0],
                "hi": summary.hi[0],
                "n": int(summary.n[0]),
                "diverged": int((runs["status"] != "completed").sum()),
                "seeds": len(runs),
            }
        )
    return pd.DataFrame(rows)


def diverged_note(points: pd.DataFrame) -> str:
    bad = points[points["diverged"] > 0]
    axes = point_axes(points)
    return "; ".join(
        f"{r['optimizer']} {spelled(axes, [r[a] for a in axes])}: "
        f"{r['diverged']}/{r['seeds']} seeds diverged"
        for _, r in bad.iterrows()
    )


def sensitivity_figure(
    task: str,
    grid: pd.DataFrame,
    task_settings: Mapping[str, Any],
    epochs: int,
    outputs: Sequence[str | Path],
) -> None:
    save_figure(build_sensitivity_figure(task, grid, task_settings, epochs), outputs)


def build_sensitivity_figure(
    task: str, grid: pd.DataFrame, task_settings: Mapping[str, Any], epochs: int
) -> plt.Figure:
    """The figure, open; intervals clipped to the metric's range (the title says so)."""
    themed()
    points = point_summary(grid)
    looks = styles_for(points["optimizer"].unique())  # colour and marker per optimizer
    others = [a for a in point_axes(grid) if a != "lr"]  # a line per value of these
    combinations = (
        sorted(grid[others].drop_duplicates().itertuples(index=False, name=None))
        if others
        else [()]
    )
    styles = {c: LINESTYLES[i % len(LINESTYLES)] for i, c in enumerate(combinations)}
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    metric = grid["metric"].iloc[0]
    lo, hi, clipped = clipped_band(metric, points["lo"], points["hi"])
    points = points.assign(lo=lo, hi=hi)
    for (optimizer, *values), line in points.groupby(["optimizer", *others], sort=False):
        ax.errorbar(
            line["lr"],
            line["mean"],
            yerr=[line["mean"] - line["lo"], line["hi"] - line["mean"]],
            color=looks[optimizer].colour,
            linestyle=styles[tuple(values)],
            marker=looks[optimizer].marker,
            markersize=4,
            fillstyle="none",
            alpha=0.85,
            capsize=2,
            label=", ".join(filter(None, (optimizer, spelled(others, values)))),
        )
    ax.set_xscale("log")
    ax.set_xlabel("α (step size)")
    ax.set_ylabel(f"final {metric} (validation split)")
    seeds = grid["seed"].nunique()
    schedule = task_settings.get("hparams", {}).get("lr_schedule", "constant")
    ax.set_title(
        titled(
            f"{task}: sensitivity to {spoken([AXIS_SYMBOLS[a] for a in ['lr', *others]])}"
            f"\n({task_settings.get('dataset')}, "
            f"{plural(epochs, 'epoch')}, "
            f"schedule {schedule}, {plural(seeds, 'tuning seed')}; mean, 95% interval)",
            clipped.replace("band", "interval"),
        ),
        fontsize=8,
    )
    fig.tight_layout()
    legend_beside(fig, [ax], fontsize=7)
    footer(fig, diverged_note(points), fontsize=7)
    return fig
