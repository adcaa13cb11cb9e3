"""Shared seaborn plotting: mean curves with 95% Student-t bands, saved as PNG and PDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from amsgrad_repro.io import atomic_open  # noqa: E402


def optimizer_palette(optimizers: Sequence[str]) -> dict[str, tuple]:
    """Stable colours: the same optimizer has the same colour in every figure."""
    order = ["adam", "amsgrad", "adamnc", "torch-adam", "torch-amsgrad", "sgd", "adagrad"]
    names = sorted(set(optimizers), key=lambda n: (order.index(n) if n in order else 99, n))
    colours = sns.color_palette("colorblind", n_colors=max(len(order) + 1, len(names)))
    return {
        name: colours[order.index(name) if name in order else i] for i, name in enumerate(names)
    }


def band_plot(ax: plt.Axes, curves: pd.DataFrame, palette: dict[str, tuple]) -> None:
    """One line per optimizer (the mean over seeds) with its 95% Student-t band."""
    for optimizer, group in curves.groupby("optimizer", sort=False):
        colour = palette[optimizer]
        ax.plot(group["step"], group["mean"], label=optimizer, color=colour, lw=1.4)
        ax.fill_between(group["step"], group["lo"], group["hi"], color=colour, alpha=0.25, lw=0)


def save_figure(fig: plt.Figure, outputs: Sequence[str | Path]) -> None:
    """Write the figure to each path (format from the suffix), atomically."""
    for path in map(Path, outputs):
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=path.suffix.lstrip("."), bbox_inches="tight", dpi=150)
    plt.close(fig)


def themed() -> None:
    sns.set_theme(context="paper", style="whitegrid")
