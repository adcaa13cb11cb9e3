"""Figure 1 of the paper (plus Theorem 1's problem) from the aggregated seed curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from amsgrad_repro.analysis.aggregate import curve
from amsgrad_repro.plots import band_plot, optimizer_palette, save_figure, themed

# (task, metric, title, y label) per panel, in the paper's order.
PANELS: tuple[tuple[str, str, str, str], ...] = (
    ("synthetic_online", "avg_regret", "Online: average regret", "$R_t/t$"),
    ("synthetic_online", "x", "Online: iterate", "$x_t$"),
    ("synthetic_stochastic", "x", "Stochastic: iterate", "$x_t$"),
    ("synthetic_theorem1", "x", "Theorem 1 problem: iterate", "$x_t$"),
)


def describe(task: dict[str, Any], seeds: int) -> str:
    hp = task["hparams"]
    schedule = "/√t" if hp.get("lr_schedule") == "inv_sqrt" else ""
    return (
        f"α={hp.get('lr')}{schedule}, β={tuple(hp.get('betas', ()))}, "
        f"T={task['steps']:.0e}, x₁={task['x1']}, {seeds} seeds"
    )


def figure1(
    aggregates: dict[str, Path],
    settings: dict[str, dict[str, Any]],
    seeds: int,
    outputs: Sequence[str | Path],
) -> None:
    import matplotlib.pyplot as plt

    themed()
    panels = [p for p in PANELS if p[0] in aggregates]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    tables = {task: pd.read_csv(path) for task, path in aggregates.items()}
    palette = optimizer_palette(pd.concat(tables.values())["optimizer"].unique())
    for ax, (task, metric, title, ylabel) in zip(axes[0], panels, strict=True):
        band_plot(ax, curve(tables[task], metric), palette)
        ax.set_xscale("log")
        ax.set_title(f"{title}\n{describe(settings[task], seeds)}", fontsize=8)
        ax.set_xlabel("iteration $t$")
        ax.set_ylabel(ylabel)
        if metric == "avg_regret":
            ax.set_yscale("log")
            ax.axhline(20 / 101, color="grey", lw=0.8, ls=":")  # R_t/t of x = +1
        if metric == "x":
            ax.set_ylim(-1.08, 1.08)
            ax.axhline(-1.0, color="grey", lw=0.8, ls="--")
    axes[0][0].legend(title="optimizer", fontsize=7)
    fig.suptitle("Figure 1 reproduction: mean over seeds with 95% bootstrap band", fontsize=10)
    fig.tight_layout()
    save_figure(fig, outputs)
