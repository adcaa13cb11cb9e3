"""Figure 1 of the paper (plus Theorem 1's problem) from the aggregated seed curves.

Columns are the paper's panels (online R_t/t and x_t, stochastic x_t, Theorem 1's x_t);
the first row holds the paper's optimizers and their framework forms, a second row (when a
task runs any) the optimizers proposed since, baselines and plug-ins, with the paper's Adam
and AMSGrad as thin grey references, so no panel stacks a dozen lines. Titles give the
setting the runs share and legends what is particular to an optimizer, both read from the
runs' own records; each row's legend sits beside it. A red note under the figure says when
a problem ran fewer steps than its full setting (``paper: steps``), as on the training
figures, and a panel whose band was clipped to [−1, 1] (F) says so in its title.

A periodic problem's runs record one phase only (``synthetic.runner.record_plan``: every
point t ≡ T mod P), so its curves compare like with like, and its band is the range over
the period ending at each point (mean over seeds of ``x_period_min`` … ``x_period_max``;
the seeds of a deterministic problem are one run): zero-width where the run is steady, the
oscillation's extent where it is not. The other problems keep the 95% Student-t band over
seeds. Each curve ends in a dot: filled when every seed settled (converged or failed by
the settle rule, ``synthetic.settle``), hollow when any was still moving.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from amsgrad_repro.formatting import plural
from amsgrad_repro.optimizers import BUILTINS
from amsgrad_repro.plots import (
    band_plot,
    footer,
    legend_beside,
    legend_labels,
    optimizer_order,
    save_figure,
    styles_for,
    themed,
    titled,
)
from amsgrad_repro.reduction import reduction
from amsgrad_repro.summaries.aggregate import curve
from amsgrad_repro.synthetic.problems import PERIOD_RANGE, PROBLEMS
from amsgrad_repro.synthetic.settle import UNSETTLED

# What a panel of each metric shows: (title after the problem's, y label).
METRICS = {"avg_regret": ("average regret", "$R_t/t$"), "x": ("iterate", "$x_t$")}
REFERENCES = ("adam", "amsgrad")
ROW_TITLES = {"paper": "the paper's optimizers", "other": "successors, baselines, plug-ins"}


def optimizer_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """The optimizers of each figure row, in catalogue order (plug-ins go to "other")."""
    order = optimizer_order()
    ranked = sorted(set(names), key=lambda n: (order.index(n) if n in order else len(order), n))
    groups: dict[str, list[str]] = {"paper": [], "other": []}
    for name in ranked:
        spec = BUILTINS.get(name)
        groups[spec.group if spec is not None else "other"].append(name)
    return {group: members for group, members in groups.items() if members}


def panels(records: Sequence[dict]) -> list[tuple[str, str, str, str]]:
    """(task, metric, title, y label) of every panel: each task's problem's ``panels``
    (``synthetic.problems``), in the order the problems are declared (the paper's)."""
    problem_of = {r["task"]: r["settings"]["problem"] for r in records}
    order = list(PROBLEMS)
    tasks = sorted(problem_of, key=lambda task: order.index(problem_of[task]))
    found = []
    for task in tasks:
        problem = PROBLEMS[problem_of[task]]
        for metric in problem.panels:
            what, ylabel = METRICS[metric]
            found.append((task, metric, f"{problem.title}: {what}", ylabel))
    return found


def describe_task(task: dict[str, Any], seeds: int) -> str:
    key = PROBLEMS[task["problem"]].parameter if "problem" in task else None
    parameter = f", {key}={task[key]:g}" if key else ""
    return f"T={task['steps']:.0e}, x₁={task['x1']:g}{parameter}, {plural(seeds, 'seed')}"


def shortened_labels(records: Sequence[dict], labels: dict[str, str]) -> dict[str, str]:
    """Legend entries of optimizers whose runs stopped before the task's steps (a plug-in
    on the generic path, ``generic_steps``), or went past them because they were still
    moving (``max_steps``): their curve ends elsewhere, and the legend says where and why,
    so a curve of another length never reads like the same budget."""
    shortened = {}
    moving = {r["optimizer"] for r in records if r.get("state") == UNSETTLED}
    for record in records:
        ran, planned = record.get("steps"), record["settings"]["steps"]
        name = record["optimizer"]
        if ran is not None and ran < planned:
            shortened[name] = (
                f"{labels.get(name, name)}, {ran:.0e} steps ({record.get('engine', '?')} path)"
            )
        elif ran is not None and ran > planned:
            # an optimizer's seeds go on together: one length per optimizer
            why = "still moving at max_steps" if name in moving else "settled"
            shortened[name] = f"{labels.get(name, name)}, ran to {ran:.0e} steps ({why})"
    return shortened


def reduction_notes(records: Sequence[dict]) -> str:
    """The reductions of the problems drawn (``SHORTENED: 20000 of 10000000 steps``), each
    with the tasks it applies to, from the settings the runs recorded."""
    settings = {r["task"]: r["settings"] for r in records}
    tasks: dict[str, list[str]] = {}
    for task, task_settings in settings.items():
        for note in reduction(task_settings).notes:
            tasks.setdefault(note, []).append(task)
    return "; ".join(f"{note} ({', '.join(names)})" for note, names in tasks.items())


def panel_curves(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """What a panel draws of ``metric``: the mean curve per optimizer and its band, ``lo``
    to ``hi``: the mean over seeds of the range within the period ending at each point
    where the runs recorded one (a periodic problem), else the Student-t band."""
    data = curve(table, metric)
    low, high = PERIOD_RANGE.get(metric, (None, None))
    if low is None or not (table["metric"] == low).any():
        return data
    keys = ["optimizer", "step"]
    ranges = curve(table, low)[[*keys, "mean"]].rename(columns={"mean": "lo"})
    ranges = ranges.merge(
        curve(table, high)[[*keys, "mean"]].rename(columns={"mean": "hi"}), on=keys
    )
    data = data.drop(columns=["lo", "hi"]).merge(ranges, on=keys, how="left")
    return data.sort_values(keys).reset_index(drop=True)


def end_states(records: Sequence[dict]) -> dict[str, bool]:
    """Per optimizer with recorded states: whether every seed settled."""
    found: dict[str, bool] = {}
    for record in records:
        if "state" in record:
            name = record["optimizer"]
            found[name] = found.get(name, True) and record["state"] != UNSETTLED
    return found


def _end_dots(ax, data: pd.DataFrame, settled: dict[str, bool], palette) -> None:  # noqa: ANN001
    """A dot on each curve's last point: filled when settled, hollow when still moving."""
    for name, group in data.groupby("optimizer", sort=False):
        if name not in settled or group.empty:
            continue
        last = group.sort_values("step").iloc[-1]
        colour = palette[name].colour
        face = colour if settled[name] else "white"
        ax.plot([last["step"]], [last["mean"]], "o", ms=5, color=colour, mfc=face, zorder=5)


def _panel(
    ax, table: pd.DataFrame, metric: str, names: list[str], palette, labels, refs, settled
) -> str:  # noqa: ANN001, E501
    data = panel_curves(table, metric)
    for name in refs:
        ref = data[data["optimizer"] == name]
        ax.plot(ref["step"], ref["mean"], color="0.6", lw=0.9, ls=":", label=f"{name} (ref.)")
    shown = data[data["optimizer"].isin(names)]
    clipped = band_plot(ax, shown, palette, labels)
    _end_dots(ax, shown, settled, palette)
    ax.set_xscale("log")
    if metric == "avg_regret":
        ax.set_yscale("log")
        ax.axhline(20 / 101, color="grey", lw=0.8, ls=":")  # R_t/t of x = +1 (online)
    else:
        ax.set_ylim(-1.08, 1.08)
        ax.axhline(-1.0, color="grey", lw=0.8, ls="--")
    return clipped


def figure1(
    aggregates: dict[str, Path], run_files: Sequence[str | Path], outputs: Sequence[str | Path]
) -> None:
    records = [json.loads(Path(p).read_text()) for p in run_files]
    tables = {task: pd.read_csv(path) for task, path in aggregates.items()}
    save_figure(build_figure1(tables, records), outputs)


def build_figure1(tables: dict[str, pd.DataFrame], records: Sequence[dict]) -> plt.Figure:
    """The figure (returned open, for tests and :func:`figure1` to save), from each task's
    aggregate table and the runs' records."""
    themed()
    shown = [p for p in panels(records) if p[0] in tables]
    groups = optimizer_groups(pd.concat(tables.values())["optimizer"].unique())
    palette = styles_for(pd.concat(tables.values())["optimizer"].unique())
    fig, axes = plt.subplots(
        len(groups), len(shown), figsize=(4.4 * len(shown), 3.6 * len(groups)), squeeze=False
    )
    for row, (group, names) in enumerate(groups.items()):
        refs = [n for n in REFERENCES if n not in names] if group != "paper" else []
        for col, (task, metric, title, ylabel) in enumerate(shown):
            task_records = [r for r in records if r["task"] == task]
            in_row = [r for r in task_records if r["optimizer"] in names]
            common, labels = legend_labels(in_row)
            labels = {**labels, **shortened_labels(in_row, labels)}
            seeds = len({r["seed"] for r in task_records})
            ax = axes[row][col]
            settled = end_states(in_row)
            clipped = _panel(ax, tables[task], metric, names, palette, labels, refs, settled)
            settings = task_records[0]["settings"] if task_records else {}
            detail = describe_task(settings, seeds) if settings else ""
            heading = f"{title} — {ROW_TITLES[group]}\n{common}\n{detail}"
            ax.set_title(titled(heading, clipped), fontsize=7)
            ax.set_xlabel("iteration $t$")
            ax.set_ylabel(ylabel)
    fig.suptitle(
        "Figure 1 reproduction: mean over seeds; band: 95% Student-t interval, or on a "
        "periodic problem (drawn at one phase) the range within a period; "
        "end dot filled: settled, hollow: still moving",
        fontsize=9,
    )
    fig.tight_layout()
    for row in axes:  # the first panel's entries, as before the legends moved out
        legend_beside(fig, row[:1], row[-1], title="optimizer", fontsize=6, title_fontsize=7)
    footer(fig, reduction_notes(records))
    return fig
