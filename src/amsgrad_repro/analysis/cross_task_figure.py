"""The cross-task heatmap (``analysis.cross_task``): rows optimizers, columns tasks.

A cell's colour is the paired effect against the column's baseline in units of its margin,
signed so that blue is better than the baseline and red worse, clipped at ±3 margins
(|effect| < 1 margin is the band inside which "no practical difference" can be shown);
its text is the effect, its 95% interval and the verdict. A cell without a margin is
grey, an optimizer the task did not run is blank. The SVG is written without its XML
prologue, so that the report's front page (workflow/report/workflow.rst) can inline it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from amsgrad_repro.analysis.cross_task import NO_MARGIN, NO_PAIRS, improvement_in_margins
from amsgrad_repro.analysis.verdicts import BETTER, INCONCLUSIVE, NO_DIFFERENCE, TOO_FEW_SEEDS
from amsgrad_repro.io import atomic_open
from amsgrad_repro.plots import message_panel, ordered, plt, save_figure, sns, themed

CLIP = 3.0  # margins: the colour scale's ends
SHORT = {NO_DIFFERENCE: "no practical\ndifference", INCONCLUSIVE: "inconclusive",
         TOO_FEW_SEEDS: "too few seeds", NO_MARGIN: "no margin",
         NO_PAIRS: "no matched\nseeds"}  # fmt: skip


def verdict_text(verdict: str, optimizer: str, baseline: str) -> str:
    """A cell's verdict, from the row's point of view: "better" or "worse" than the
    baseline, else the verdict itself, shortened."""
    if verdict == f"{optimizer}{BETTER}":
        return "BETTER"
    if verdict == f"{baseline}{BETTER}":
        return "WORSE"
    return SHORT.get(verdict, verdict)


def cell_text(row: pd.Series) -> str:
    """Effect, interval and verdict of one cell."""
    if not np.isfinite(row["estimate"]):
        return verdict_text(row["verdict"], row["optimizer"], row["baseline"])
    return (
        f"{row['estimate']:+.3g}\n[{row['lo']:.3g}, {row['hi']:.3g}]\n"
        f"{verdict_text(row['verdict'], row['optimizer'], row['baseline'])}"
    )


def column_label(cells: pd.DataFrame) -> str:
    """``logreg`` / ``final test_accuracy`` / ``vs adam, ±0.005``."""
    first = cells.iloc[0]
    margin = f", ±{first['margin']:.3g}" if np.isfinite(first["margin"]) else ", no margin"
    metric = f"{first['statistic']} {first['metric']}"
    return f"{first['task']}\n{metric}\nvs {first['baseline']}{margin}"


def cross_task_figure(
    frame: pd.DataFrame, outputs: Sequence[str | Path], scale: str, min_seeds: int
) -> None:
    """Draw the heatmap of the cross-task table and write it to each of ``outputs``."""
    themed()
    tasks = list(dict.fromkeys(frame["task"]))
    optimizers = ordered(list(frame["optimizer"]))
    width, height = 1.9 * max(len(tasks), 1) + 2.5, 0.85 * max(len(optimizers), 1) + 2.2
    fig, ax = plt.subplots(figsize=(width, height))
    if frame.empty:
        message_panel(ax, "No task ran two optimizers: nothing to compare.", alarming=False)
    else:
        _heatmap(ax, frame, tasks, optimizers)
    ax.set_title(
        f"Each optimizer against the task's baseline, paired by seed (scale {scale}; "
        f"a verdict needs {min_seeds}+ seeds)\ncolour: effect in margins, blue = better, "
        f"red = worse, clipped at ±{CLIP:g}; text: effect, 95% t interval, verdict",
        fontsize=9,
    )
    svgs = [Path(p) for p in outputs if Path(p).suffix == ".svg"]
    _save_inline_svg(fig, svgs)
    save_figure(fig, [p for p in outputs if Path(p).suffix != ".svg"])


def _heatmap(ax, frame: pd.DataFrame, tasks: list[str], optimizers: list[str]) -> None:  # noqa: ANN001
    frame = frame.assign(colour=improvement_in_margins(frame), text=frame.apply(cell_text, axis=1))
    colour = frame.pivot(index="optimizer", columns="task", values="colour")
    colour = colour.reindex(index=optimizers, columns=tasks).astype(float)
    text = frame.pivot(index="optimizer", columns="task", values="text")
    text = text.reindex(index=optimizers, columns=tasks).fillna("")
    present = text.to_numpy() != ""
    # Cells without a margin (or an estimate) are grey; cells not run stay blank.
    ax.set_facecolor("white")
    grey = np.where(present & ~np.isfinite(colour.to_numpy()), 0.0, np.nan)
    if np.isfinite(grey).any():
        sns.heatmap(grey, ax=ax, cmap=["0.85"], vmin=0, vmax=1, cbar=False, mask=np.isnan(grey))
    sns.heatmap(
        colour.clip(-CLIP, CLIP),
        ax=ax,
        cmap="RdBu",
        vmin=-CLIP,
        vmax=CLIP,
        center=0.0,
        annot=text.to_numpy(),
        fmt="",
        annot_kws={"fontsize": 7},
        linewidths=0.5,
        linecolor="white",
        cbar_kws={"label": "effect / margin (+ = better than baseline)", "shrink": 0.8},
    )
    for (r, c), shown in np.ndenumerate(text.to_numpy()):
        if shown and not np.isfinite(colour.to_numpy()[r, c]):
            ax.text(c + 0.5, r + 0.5, shown, ha="center", va="center", fontsize=7)
    labels = [column_label(frame[frame["task"] == t]) for t in tasks]
    ax.set_xticks(np.arange(len(tasks)) + 0.5, labels, rotation=0, fontsize=7)
    ax.set_yticks(np.arange(len(optimizers)) + 0.5, optimizers, rotation=0, fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel("optimizer")
    ax.grid(False)


def _save_inline_svg(fig, paths: Sequence[Path]) -> None:  # noqa: ANN001
    """The SVG from its ``<svg`` element on (no XML declaration or DOCTYPE, which HTML
    does not take inline), as wide as its container, with text as text and ids fixed,
    written atomically."""
    for path in paths:
        buffer = io.StringIO()
        with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cross_task"}):
            fig.savefig(buffer, format="svg", bbox_inches="tight")
        svg = buffer.getvalue()
        svg = svg[svg.index("<svg") :]
        # As wide as the page allows (the viewBox keeps the aspect), not a fixed size.
        head, rest = svg.split(">", 1)
        head = re.sub(r'\s(width|height)="[^"]*"', "", head) + ' width="100%"'
        with atomic_open(path) as handle:
            handle.write(f"{head}>{rest}")
