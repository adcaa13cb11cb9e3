"""Figure 1 of the paper (plus Theorem 1's problem) from the aggregated seed curves.

Columns are the paper's panels (online R_t/t and x_t, stochastic x_t, Theorem 1's x_t);
the first row holds the paper's optimizers and their framework forms, a second row (when a
task runs any) the optimizers proposed since, baselines and plug-ins, with the paper's Adam
and AMSGrad as thin grey references, so no panel stacks a dozen lines. Titles give the
setting the runs share and legends what is particular to an optimizer, both read from the
runs' own records; each row's legend sits beside it. A red note under the figure says when
a problem ran fewer steps than its full setting (``paper: steps``), as on the training
figures, and a panel whose band was clipped to [−1, 1] (F) says so in its title.
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
from amsgrad_repro.synthetic.problems import PROBLEMS

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
    on the generic path, ``generic_steps``): their curve ends early, and the legend says
    where and why, so a shorter curve never reads like the same budget."""
    shortened = {}
    for record in records:
        ran, planned = record.get("steps"), record["settings"]["steps"]
        if ran is not None and ran < planned:
            name = record["optimizer"]
            shortened[name] = (
                f"{labels.get(name, name)}, {ran:.0e} steps ({record.get('engine', '?')} path)"
            )
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


def _panel(ax, table: pd.DataFrame, metric: str, names: list[str], palette, labels, refs) -> str:
    data = curve(table, metric)
    for name in refs:
        ref = data[data["optimizer"] == name]
        ax.plot(ref["step"], ref["mean"], color="0.6", lw=0.9, ls=":", label=f"{name} (ref.)")
    clipped = band_plot(ax, data[data["optimizer"].isin(names)], palette, labels)
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
            clipped = _panel(ax, tables[task], metric, names, palette, labels, refs)
            settings = task_records[0]["settings"] if task_records else {}
            detail = describe_task(settings, seeds) if settings else ""
            heading = f"{title} — {ROW_TITLES[group]}\n{common}\n{detail}"
            ax.set_title(titled(heading, clipped), fontsize=7)
            ax.set_xlabel("iteration $t$")
            ax.set_ylabel(ylabel)
    fig.suptitle("Figure 1 reproduction: mean over seeds with 95% Student-t band", fontsize=10)
    fig.tight_layout()
    for row in axes:  # the first panel's entries, as before the legends moved out
        legend_beside(fig, row[:1], row[-1], title="optimizer", fontsize=6, title_fontsize=7)
    footer(fig, reduction_notes(records))
    return fig
