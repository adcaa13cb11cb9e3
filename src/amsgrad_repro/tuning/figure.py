"""The learning-rate sensitivity figure of a tuned task: final validation metric vs α, one
line per optimizer (colour) and β2 (line style), the mean over tuning seeds with a 95%
Student-t interval. The paper claims AMSGrad is more robust to hyper-parameter changes
than Adam; flat, low lines are robust ones. Diverged grid points are listed in red."""

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


def point_summary(grid: pd.DataFrame) -> pd.DataFrame:
    """Mean and interval over seeds of each optimizer × β2 × α point (finite seeds only)."""
    rows = []
    for (optimizer, beta2, lr), runs in grid.groupby(["optimizer", "beta2", "lr"], sort=True):
        summary = interval_summary(runs["value"].to_numpy(dtype=float))
        rows.append(
            {
                "optimizer": optimizer,
                "beta2": beta2,
                "lr": lr,
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
    return "; ".join(
        f"{r.optimizer} α={r.lr:g} β2={r.beta2:g}: {r.diverged}/{r.seeds} seeds diverged"
        for r in bad.itertuples(index=False)
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
    styles = {
        b: LINESTYLES[i % len(LINESTYLES)] for i, b in enumerate(sorted(grid["beta2"].unique()))
    }
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    metric = grid["metric"].iloc[0]
    lo, hi, clipped = clipped_band(metric, points["lo"], points["hi"])
    points = points.assign(lo=lo, hi=hi)
    for (optimizer, beta2), line in points.groupby(["optimizer", "beta2"], sort=False):
        ax.errorbar(
            line["lr"],
            line["mean"],
            yerr=[line["mean"] - line["lo"], line["hi"] - line["mean"]],
            color=looks[optimizer].colour,
            linestyle=styles[beta2],
            marker=looks[optimizer].marker,
            markersize=4,
            fillstyle="none",
            alpha=0.85,
            capsize=2,
            label=f"{optimizer}, β2={beta2:g}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("α (step size)")
    ax.set_ylabel(f"final {metric} (validation split)")
    seeds = grid["seed"].nunique()
    schedule = task_settings.get("hparams", {}).get("lr_schedule", "constant")
    ax.set_title(
        titled(
            f"{task}: sensitivity to α and β2\n({task_settings.get('dataset')}, "
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
