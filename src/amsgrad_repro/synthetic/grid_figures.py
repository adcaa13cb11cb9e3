"""The figures of a grid, drawn from its table (``synthetic.grids``).

* ``heatmap``: one seaborn heatmap per problem (row) × optimizer (column) of the mean final
  x over seeds in each cell, on one shared colour scale from −1 (x*, blue) to +1 (the
  worst point, red); a black dot in a cell grows with the share of seeds that ended within
  ``success_radius`` of x*; the declared theory curve (``grid_spec.CURVES``) is drawn over
  the cells; a hatched cell was still moving when its step budget ran out
  (``synthetic.settle``), so its colour says where x was, not where it goes.
* ``quartiles``: x_t per optimizer, the median over seeds with the band between the first
  and third quartiles, one panel per cell (the declared axis's values side by side), each
  curve over the steps every seed of the cell ran, with a dot where its median ended
  (hollow: still moving at the budget); the paper's
  optimizers in the first row, the successors in the second with Adam and AMSGrad as grey
  references, as in Figure 1.

Every setting is stated on the figure: the shared ones in the title, what is particular to
an optimizer beside its name (read from the resolved settings, as run).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Rectangle

from amsgrad_repro.formatting import plural
from amsgrad_repro.optimizers import hparams
from amsgrad_repro.plots import (
    footer,
    legend_beside,
    legend_labels,
    save_figure,
    styles_for,
    themed,
)
from amsgrad_repro.reduction import reduction
from amsgrad_repro.synthetic.figure import REFERENCES, ROW_TITLES, optimizer_groups
from amsgrad_repro.synthetic.grid_spec import CURVES, GridSpec
from amsgrad_repro.synthetic.grids import cell_summary, recorded_steps
from amsgrad_repro.synthetic.problems import DETERMINISTIC
from amsgrad_repro.synthetic.settle import UNSETTLED

SYMBOLS = {"beta1": r"$\beta_1$", "beta2": r"$\beta_2$", "lr": r"$\alpha$", "C": "C", "k": "k"}
CMAP = "coolwarm"


def grid_figure(grid: GridSpec, table: pd.DataFrame, outputs: Sequence[str | Path]) -> None:
    """The grid's declared figure, written to each path (PNG/PDF)."""
    save_figure(build_grid_figure(grid, table), outputs)


def build_grid_figure(grid: GridSpec, table: pd.DataFrame):  # noqa: ANN201
    """The grid's declared figure, open; a red note under it when the grid ran fewer steps
    than its full setting (its ``paper`` block), as on the training figures."""
    themed()
    draw = {"heatmap": heatmap_figure, "quartiles": quartile_figure}[grid.figure["type"]]
    fig = draw(grid, table)
    notes = reduction({"kind": "synthetic", "steps": grid.steps, "paper": grid.paper}).notes
    footer(fig, "; ".join(notes))
    return fig


def settings_text(grid: GridSpec) -> tuple[str, dict[str, str]]:
    """(what every optimizer shares, what is particular to each), axis fields left out
    (they vary over the grid), plus the run length, start and seeds."""
    axes = set(grid.axis_names)
    records = [
        {
            "optimizer": name,
            "hparams": {k: v for k, v in hparams.as_record(settings).items() if k not in axes},
        }
        for name, settings in grid.settings.items()
    ]
    common, labels = legend_labels(records)
    if len(grid.optimizers) == 1:  # legend_labels shares nothing with one optimizer
        common, labels = labels[grid.optimizers[0]], {grid.optimizers[0]: grid.optimizers[0]}
    seeds = ", ".join(
        f"{problem}: {len(grid.seeds_for(problem))} seed"
        + ("s" if len(grid.seeds_for(problem)) > 1 else " (deterministic)")
        for problem in grid.problems
    )
    fixed = "".join(f", {key}={value:g}" for key, value in grid.parameters.items())
    run = f"T={grid.steps:.0e} steps, x₁={grid.x1:g}{fixed}; {seeds}"
    return f"{common.strip(', ')} · {run}" if common else run, labels


def _ticks(values: Sequence[float], most: int = 12) -> list[str]:
    """Tick labels, every n-th shown so that at most ``most`` are."""
    every = max(1, int(np.ceil(len(values) / most)))
    return [f"{v:.5g}" if i % every == 0 else "" for i, v in enumerate(values)]


def _transform(values: np.ndarray):  # noqa: ANN202
    """The transform in which the axis values are most evenly spaced (linear, log,
    log(1 − v) or logit), so a curve between cell centres is drawn where it belongs."""
    candidates = [lambda v: v]
    if np.all(values > 0):
        candidates.append(np.log)
    if np.all(values < 1):
        candidates.append(lambda v: np.log1p(-v))
    if np.all((values > 0) & (values < 1)):
        candidates.append(lambda v: np.log(v) - np.log1p(-v))

    def unevenness(f) -> float:  # noqa: ANN001
        gaps = np.abs(np.diff(f(values)))
        return float(np.std(gaps) / np.mean(gaps)) if gaps.size and np.mean(gaps) else 0.0

    return min(candidates, key=unevenness)


def positions(axis_values: Sequence[float], points: np.ndarray) -> np.ndarray:
    """Heatmap coordinates of values along a categorical axis whose cells are sorted
    ascending (cell i spans [i, i+1]); NaN outside the axis."""
    values = np.asarray(axis_values, dtype=float)
    order = np.argsort(values)
    f = _transform(values[order])
    sign = 1.0 if f(values[order][-1]) > f(values[order][0]) else -1.0  # np.interp: increasing
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.interp(
            sign * f(points),
            sign * f(values[order]),
            np.arange(values.size) + 0.5,
            left=np.nan,
            right=np.nan,
        )


def _draw_curve(ax, grid: GridSpec) -> None:  # noqa: ANN001
    curve = CURVES.get(grid.figure.get("curve") or "")
    if curve is None:
        return
    xs = np.asarray(grid.axis(curve.x).values)
    lo, hi = xs.min(), xs.max()
    dense = np.geomspace(lo, hi, 400) if lo > 0 else np.linspace(lo, hi, 400)
    if np.all(xs < 1) and lo > 0:
        dense = 1.0 - np.geomspace(1.0 - lo, 1.0 - hi, 400)
    px = positions(xs, dense)
    py = positions(grid.axis(curve.y).values, curve.function(dense))
    ax.plot(px, py, color="black", lw=1.6, ls="--", label=curve.label)


def _panel_frame(summary: pd.DataFrame, grid: GridSpec, value: str) -> pd.DataFrame:
    x, y = grid.figure["x"], grid.figure["y"]
    frame = summary.pivot_table(index=y, columns=x, values=value, sort=True)
    return frame.reindex(index=sorted(grid.axis(y).values), columns=sorted(grid.axis(x).values))


def _hatch_unsettled(ax, moving: np.ndarray) -> None:  # noqa: ANN001
    """Hatch the cells still moving when their budget ran out (``synthetic.settle``): their
    colour is where x was, not where it goes."""
    for r, c in zip(*np.nonzero(moving == 1), strict=True):
        ax.add_patch(Rectangle((c, r), 1, 1, fill=False, hatch="////", lw=0, color="0.15"))


def _budget(grid: GridSpec) -> str:
    budgets = sorted(set(grid.max_steps.values()))
    return "max " + " / ".join(f"{b:.0e}" for b in budgets) + " steps"


def heatmap_figure(grid: GridSpec, table: pd.DataFrame):  # noqa: ANN201

    summary = cell_summary(table, grid)
    common, labels = settings_text(grid)
    x, y = grid.figure["x"], grid.figure["y"]
    rows, cols = len(grid.problems), len(grid.optimizers)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 1.2, 4.2 * rows), squeeze=False)
    colourbar = fig.add_axes([0.92, 0.25, 0.012, 0.5])
    for r, problem in enumerate(grid.problems):
        for c, optimizer in enumerate(grid.optimizers):
            ax = axes[r][c]
            cells = summary[(summary["problem"] == problem) & (summary["optimizer"] == optimizer)]
            means = _panel_frame(cells, grid, "mean_x")
            sns.heatmap(
                means,
                ax=ax,
                vmin=-1.0,
                vmax=1.0,
                cmap=CMAP,
                cbar=(r, c) == (0, 0),
                cbar_ax=colourbar if (r, c) == (0, 0) else None,
                cbar_kws={"label": "mean final $x$ over seeds"},
                xticklabels=_ticks(list(means.columns)),
                yticklabels=_ticks(list(means.index)),
            )
            _hatch_unsettled(ax, _panel_frame(cells.assign(moving=cells["state"] == UNSETTLED),
                                              grid, "moving").to_numpy())  # fmt: skip
            share = _panel_frame(cells, grid, "share_within").to_numpy()
            rows_at, cols_at = np.nonzero(share > 0)
            ax.scatter(
                cols_at + 0.5, rows_at + 0.5, s=14 * share[rows_at, cols_at], c="black", lw=0
            )
            _draw_curve(ax, grid)
            ax.invert_yaxis()
            ax.set_xlabel(SYMBOLS.get(x, x))
            ax.set_ylabel(SYMBOLS.get(y, y))
            ax.tick_params(axis="x", labelrotation=90, labelsize=6)
            ax.tick_params(axis="y", labelsize=6)
            ax.set_title(f"{problem} problem · {labels.get(optimizer, optimizer)}", fontsize=8)
    fig.suptitle(
        f"{grid.title}: mean final $x$ per cell (x* = −1 blue, +1 red); dots: share of seeds "
        f"within {grid.success_radius:g} of x*; hatched: still moving at the budget "
        f"({_budget(grid)})\n{common}",
        fontsize=9,
    )
    # The titles and tick labels take the same inches whatever the number of rows.
    fig.subplots_adjust(
        left=0.07, right=0.9, bottom=0.25 / rows, top=1 - 0.24 / rows, wspace=0.3, hspace=0.45
    )
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:  # the theory curve's entry: under the colour bar, right of every panel
        below = colourbar.get_position()
        fig.legend(handles, names, loc="upper left", bbox_to_anchor=(below.x0, below.y0 - 0.03),
                   borderaxespad=0.0, fontsize=7)  # fmt: skip
    return fig


def _quartile_panel(ax, frame: pd.DataFrame, names, steps, styles, labels, refs) -> None:  # noqa: ANN001
    xs = [s for s, _ in steps]
    columns = [c for _, c in steps]
    for name in refs:
        values = frame.loc[frame["optimizer"] == name, columns].to_numpy()
        ran = np.isfinite(values).all(axis=0)
        ax.plot(np.array(xs)[ran], np.median(values[:, ran], axis=0), color="0.6", lw=0.9,
                ls=":", label=f"{name} (ref.)")  # fmt: skip
    for name in names:
        mine = frame[frame["optimizer"] == name]
        values = mine[columns].to_numpy()
        ran = np.isfinite(values).all(axis=0)  # the steps every seed of the cell ran
        low, mid, high = np.quantile(values[:, ran], [0.25, 0.5, 0.75], axis=0)
        style = styles[name]
        at = np.array(xs)[ran]
        ax.plot(
            at, mid, color=style.colour, ls=style.linestyle, lw=1.4, label=labels.get(name, name)
        )
        ax.fill_between(at, low, high, color=style.colour, alpha=0.25, lw=0)
        # Where the median ended: filled when the cell settled, hollow when still moving.
        moving = (mine["state"] == UNSETTLED).any()
        ax.plot(at[-1], mid[-1], "o", ms=4, color=style.colour,
                mfc="white" if moving else style.colour)  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(-1.08, 1.08)
    ax.axhline(-1.0, color="grey", lw=0.8, ls="--")


def quartile_figure(grid: GridSpec, table: pd.DataFrame):  # noqa: ANN201

    axis = grid.figure["panels"]
    steps = recorded_steps(table)
    groups = optimizer_groups(list(grid.optimizers))
    styles = styles_for(list(grid.optimizers))
    common, labels = settings_text(grid)
    # One panel per problem × cell: the ``panels`` axis first, then the others' values.
    others = [a for a in grid.axis_names if a != axis]
    panels = [
        (p, {axis: v, **dict(zip(others, rest, strict=True))})
        for p in grid.problems
        for rest in itertools.product(*(grid.axis(a).values for a in others))
        for v in grid.axis(axis).values
    ]
    fig, axes = plt.subplots(
        len(groups), len(panels), figsize=(5.2 * len(panels), 3.8 * len(groups)), squeeze=False
    )
    for row, (group, names) in enumerate(groups.items()):
        refs = [n for n in REFERENCES if n not in names and n in grid.optimizers]
        for col, (problem, cell) in enumerate(panels):
            chosen = table["problem"] == problem
            for name, value in cell.items():
                chosen &= np.isclose(table[name], value)
            frame = table[chosen]
            ax = axes[row][col]
            _quartile_panel(ax, frame, names, steps, styles, labels, refs)
            seeds = len(grid.seeds_for(problem))
            where = ", ".join(f"{SYMBOLS.get(n, n)} = {v:g}" for n, v in cell.items())
            ax.set_title(
                f"{problem} problem, {where} — {ROW_TITLES[group]} ({plural(seeds, 'seed')})",
                fontsize=8,
            )
            ax.set_xlabel("iteration $t$")
            ax.set_ylabel("$x_t$ (median, quartile band)")
    deterministic = [p for p in grid.problems if p in DETERMINISTIC]
    note = f" ({', '.join(deterministic)}: deterministic)" if deterministic else ""
    fig.suptitle(
        f"{grid.title}: $x_t$ per optimizer, median over seeds with the quartile band{note}; "
        f"dot: where the median ended (hollow: still moving at {_budget(grid)})\n"
        f"{common}",
        fontsize=9,
    )
    fig.tight_layout()
    for row in axes:  # the first panel's entries, beside the row
        legend_beside(fig, row[:1], row[-1], title="optimizer", fontsize=6, title_fontsize=7)
    return fig
