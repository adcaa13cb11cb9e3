"""Shared seaborn plotting: mean curves with bootstrap bands, saved as PNG and PDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from amsgrad_repro.io import atomic_open  # noqa: E402

GREY = 7  # the colorblind palette's grey is kept for reference lines


def optimizer_order() -> list[str]:
    """The catalogue's order (``optimizers.BUILTINS``): legends and colours follow it."""
    from amsgrad_repro.optimizers import BUILTINS

    return list(BUILTINS)


def optimizer_palette(optimizers: Sequence[str]) -> dict[str, tuple]:
    """Stable colours: the same optimizer has the same colour in every figure (built-ins
    by catalogue position, plug-ins after them in name order)."""
    colours = [c for i, c in enumerate(sns.color_palette("colorblind", 10)) if i != GREY]
    colours += [c for i, c in enumerate(sns.color_palette("dark", 10)) if i != GREY]
    position = {name: i for i, name in enumerate(ordered(optimizers))}
    order = optimizer_order()
    position = {
        name: order.index(name) if name in order else len(order) + position[name]
        for name in position
    }
    return {name: colours[index % len(colours)] for name, index in position.items()}


def ordered(optimizers: Sequence[str]) -> list[str]:
    """Distinct names in catalogue order, plug-ins after the built-ins by name."""
    order = optimizer_order()
    rank = {name: i for i, name in enumerate(order)}
    return sorted(set(optimizers), key=lambda n: (rank.get(n, len(order)), n))


def legend_labels(records: Sequence[dict]) -> tuple[str, dict[str, str]]:
    """What the runs' recorded hyper-parameters have in common (for a title) and what is
    particular to each optimizer (for its legend entry), e.g. ``("α=0.5/√t, β1=0.9",
    {"adopt": "adopt (β2=0.9999, ε=1e-06)", ...})``. Read from the runs, not the config,
    so tuned or overridden values show as they were run."""
    from amsgrad_repro.optimizers import run_label_parts

    parts: dict[str, dict[str, str]] = {}
    for record in records:
        parts.setdefault(
            record["optimizer"], run_label_parts(record["optimizer"], record.get("hparams") or {})
        )
    if not parts:
        return "", {}
    shared = (
        set.intersection(*(set(p.items()) for p in parts.values())) if len(parts) > 1 else set()
    )
    first = next(iter(parts.values()))
    common = ", ".join(text for key, text in first.items() if (key, text) in shared)
    labels = {}
    for name, own in parts.items():
        rest = ", ".join(text for key, text in own.items() if (key, text) not in shared)
        labels[name] = f"{name} ({rest})" if rest else name
    return common, labels


def band_plot(
    ax: plt.Axes,
    curves: pd.DataFrame,
    palette: dict[str, tuple],
    labels: dict[str, str] | None = None,
) -> None:
    """One line per optimizer (the mean over seeds) with its 95% bootstrap band, in
    catalogue order."""
    groups = dict(tuple(curves.groupby("optimizer", sort=False)))
    for optimizer in ordered(list(groups)):
        group = groups[optimizer]
        colour = palette[optimizer]
        label = (labels or {}).get(optimizer, optimizer)
        ax.plot(group["step"], group["mean"], label=label, color=colour, lw=1.4)
        ax.fill_between(group["step"], group["lo"], group["hi"], color=colour, alpha=0.25, lw=0)


def save_figure(fig: plt.Figure, outputs: Sequence[str | Path]) -> None:
    """Write the figure to each path (format from the suffix), atomically."""
    for path in map(Path, outputs):
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=path.suffix.lstrip("."), bbox_inches="tight", dpi=150)
    plt.close(fig)


def themed() -> None:
    sns.set_theme(context="paper", style="whitegrid")
