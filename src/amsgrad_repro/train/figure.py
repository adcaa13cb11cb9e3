"""Figure 2 style panels for a training task: train and test loss vs iterations.

One line per optimizer (the mean over seeds) with its 95% bootstrap band, read from the
aggregate table (``results/aggregates/<task>.csv``). The title says what was run: dataset,
model, α schedule, betas, epochs and seeds, and in red when the data was cut to a subset
(smoke runs) or some seeds diverged, so a reduced run is never mistaken for the real one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from amsgrad_repro.analysis.aggregate import curve
from amsgrad_repro.plots import band_plot, optimizer_palette, save_figure, themed

PANELS: tuple[tuple[str, str], ...] = (("train_loss", "train loss"), ("test_loss", "test loss"))
VAE_LABEL = "negative ELBO (nats/image)"


def describe(task: Mapping[str, Any], seeds: int) -> str:
    hp = task.get("hparams", {})
    schedule = "/√t" if hp.get("lr_schedule") == "inv_sqrt" else " (constant)"
    model = task.get("model", {}).get("arch", "?")
    return (
        f"{model} on {task.get('dataset')}, batch {task.get('batch_size')}, "
        f"α={hp.get('lr')}{schedule}, β={tuple(hp.get('betas', ()))}, "
        f"{task.get('epochs')} epochs, {seeds} seeds"
    )


def warnings_line(task: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    """What makes this run smaller or less complete than the configured experiment."""
    notes = []
    subset = task.get("subset") or {}
    if any(subset.values()):
        notes.append(
            "SUBSET: " + ", ".join(f"{k} {v}" for k, v in subset.items() if v) + " examples"
        )
    diverged = [f"{r['optimizer']}/{r['seed']}" for r in records if r["status"] == "diverged"]
    if diverged:
        notes.append(f"diverged (stopped early): {', '.join(diverged)}")
    return "; ".join(notes)


def training_figure(
    task_name: str,
    aggregate: str | Path,
    settings: Mapping[str, Any],
    run_files: Sequence[str | Path],
    outputs: Sequence[str | Path],
    log_y: bool = False,
) -> None:
    import matplotlib.pyplot as plt

    themed()
    table = pd.read_csv(aggregate)
    records = [json.loads(Path(p).read_text()) for p in run_files]
    seeds = len({r["seed"] for r in records}) if records else int(table["n"].max())
    palette = optimizer_palette(table["optimizer"].unique())
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.0 * len(PANELS), 3.8), squeeze=False)
    ylabel_extra = f" — {VAE_LABEL}" if settings.get("kind") == "vae" else ""
    for ax, (metric, label) in zip(axes[0], PANELS, strict=True):
        band_plot(ax, curve(table, metric), palette)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label + ylabel_extra, fontsize=8)
        if log_y:
            ax.set_yscale("log")
    axes[0][0].legend(title="optimizer", fontsize=7)
    title = f"{task_name}: mean over seeds with 95% bootstrap band\n{describe(settings, seeds)}"
    fig.suptitle(title, fontsize=9)
    warning = warnings_line(settings, records)
    if warning:
        fig.text(0.5, -0.02, warning, ha="center", color="firebrick", fontsize=8)
    fig.tight_layout()
    save_figure(fig, outputs)
