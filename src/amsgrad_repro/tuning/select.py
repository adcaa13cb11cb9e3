"""Reading a tuning grid's runs, selecting a point, and measuring robustness.

Score of a grid point: the mean over tuning seeds of the metric (default ``val_loss``) at
the run's last log point; a diverged seed scores +inf, so a point that diverges on any seed
is never selected over one that does not. Ties go to the first point in grid order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.io import provenance
from amsgrad_repro.layout import TUNED_AXES, parse_point
from amsgrad_repro.settings_base import ConfigError
from amsgrad_repro.summaries.finals import lower_is_better

SENSITIVITY_METRIC = "hparam_sensitivity"


def grid_columns(axes: Sequence[str]) -> list[str]:
    """The columns of a grid table whose points set ``axes``."""
    return ["task", "optimizer", *axes, "seed", "status", "metric", "value"]


def point_axes(grid: pd.DataFrame) -> list[str]:
    """The axes a grid table's points set (its columns among layout.TUNED_AXES)."""
    return [axis for axis in TUNED_AXES if axis in grid.columns]


def run_point(path: Path, hparams: Mapping[str, Any]) -> dict[str, float]:
    """A grid run's point: the axes its folder names (layout.point_name), with the values
    the run recorded, which must be the folder's."""
    point = parse_point(path.parent.parent.name)
    if point is None:
        raise ConfigError(f"{path}: not in a tuning grid point's folder (layout.point_name)")
    recorded = {axis: float(hparams[axis]) for axis in point if axis in hparams}
    if recorded != point:
        raise ConfigError(
            f"{path}: the run recorded {recorded}, but its folder is the point {point}; "
            "remove the run and let the workflow recompute it"
        )
    return point


def load_grid(run_files: Iterable[str | Path], metric: str) -> pd.DataFrame:
    """One row per grid run: its point (α, β2 and any λ, from the run's own record, checked
    against its folder), seed, status and the metric at its last log point (NaN when
    diverged)."""
    rows = []
    for path in map(Path, run_files):
        info = json.loads(path.read_text())
        final = info.get("final") or {}
        if metric not in final:
            raise ConfigError(
                f"{path}: no {metric!r} in the run's final metrics "
                f"(has: {', '.join(sorted(final))}); tuning needs the validation split"
            )
        if (info.get("data") or {}).get("holdout_val") is False:
            raise ConfigError(
                f"{path}: the run trained on its validation split (holdout_val: false); "
                "tuning must score on held-out data"
            )
        completed = info.get("status") == "completed"
        rows.append(
            {
                "task": info["task"],
                "optimizer": info["optimizer"],
                **run_point(path, info["hparams"]),
                "seed": int(info["seed"]),
                "status": info.get("status", "completed"),
                "metric": metric,
                "value": float(final[metric]) if completed else math.nan,
            }
        )
    axes = [axis for axis in TUNED_AXES if any(axis in row for row in rows)]
    if any(set(axes) - set(row) for row in rows):
        raise ConfigError("the grid's runs set different axes: " + ", ".join(map(str, run_files)))
    return pd.DataFrame(rows, columns=grid_columns(axes))


def _signed(values: pd.Series, metric: str) -> pd.Series:
    """Values oriented so that lower is better, with non-finite (diverged) as +inf."""
    oriented = values if lower_is_better(metric) else -values
    return oriented.where(np.isfinite(oriented), np.inf)


def select(grid: pd.DataFrame, optimizer: str) -> dict[str, Any]:
    """The grid point with the best mean score over seeds (diverged seed = +inf)."""
    subset = grid[grid["optimizer"] == optimizer]
    if subset.empty:
        raise ValueError(f"no grid runs for optimizer {optimizer!r}")
    metric = subset["metric"].iloc[0]
    axes = point_axes(grid)
    scored = subset.assign(score=_signed(subset["value"], metric))
    points = scored.groupby(axes, sort=False).agg(
        score=("score", "mean"),
        mean=("value", "mean"),
        n=("value", "count"),
        diverged=("status", lambda s: int((s != "completed").sum())),
    )
    points = points.reset_index()
    best = points.loc[points["score"].idxmin()]
    return {
        "selected": {axis: float(best[axis]) for axis in axes},
        "score": float(best["mean"]) if np.isfinite(best["score"]) else None,
        "points": points.drop(columns="score").to_dict(orient="records"),
    }


def selection_record(grid: pd.DataFrame, task: str, optimizer: str) -> dict[str, Any]:
    """The file the seed-replicated runs read: the selected point (α, β2 and any λ; β1 as
    configured), how it was chosen, and every grid point's score."""
    chosen = select(grid, optimizer)
    if chosen["score"] is None:
        raise ValueError(f"{task}/{optimizer}: every grid point diverged; nothing to select")
    return {
        "task": task,
        "optimizer": optimizer,
        "selected": chosen["selected"],
        "metric": str(grid["metric"].iloc[0]),
        "score": chosen["score"],
        "seeds": sorted(int(s) for s in grid["seed"].unique()),
        "grid": chosen["points"],
        **provenance(),
    }


# --- robustness ------------------------------------------------------------------------


def sensitivity(grid: pd.DataFrame) -> pd.DataFrame:
    """How much an optimizer loses away from its best grid point, per tuning seed: the mean
    over the grid of (score − best score of that optimizer and seed). A diverged point
    counts as the worst finite score of that task and seed (over all optimizers), so
    divergence is penalised without making the mean infinite. Lower = more robust."""
    rows = []
    for (task, seed), runs in grid.groupby(["task", "seed"], sort=True):
        metric = runs["metric"].iloc[0]
        oriented = _signed(runs["value"], metric)
        finite = oriented[np.isfinite(oriented)]
        worst = finite.max() if len(finite) else math.nan
        runs = runs.assign(score=oriented.where(np.isfinite(oriented), worst))
        for optimizer, points in runs.groupby("optimizer", sort=True):
            rows.append(
                {
                    "task": task,
                    "optimizer": optimizer,
                    "seed": int(seed),
                    "status": "completed",
                    "statistic": "final",
                    "metric": SENSITIVITY_METRIC,
                    "value": float((points["score"] - points["score"].min()).mean()),
                    "points": len(points),
                    "diverged_points": int((points["status"] != "completed").sum()),
                }
            )
    return pd.DataFrame(rows)
