"""Reading a tuning grid's runs, selecting a point, and measuring robustness.

Score of a grid point: the mean over tuning seeds of the metric (default ``val_loss``) at
the run's last log point; a diverged seed scores +inf, so a point that diverges on any seed
is never selected over one that does not. Ties go to the first point in grid order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.io import provenance
from amsgrad_repro.settings_base import ConfigError
from amsgrad_repro.summaries.finals import lower_is_better

GRID_COLUMNS = ["task", "optimizer", "lr", "beta2", "seed", "status", "metric", "value"]
SENSITIVITY_METRIC = "hparam_sensitivity"


def load_grid(run_files: Iterable[str | Path], metric: str) -> pd.DataFrame:
    """One row per grid run: its α, β2 (from the run's own record), seed, status and the
    metric at its last log point (NaN when diverged)."""
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
        hparams = info["hparams"]
        completed = info.get("status") == "completed"
        rows.append(
            {
                "task": info["task"],
                "optimizer": info["optimizer"],
                "lr": float(hparams["lr"]),
                "beta2": float(hparams["beta2"]),
                "seed": int(info["seed"]),
                "status": info.get("status", "completed"),
                "metric": metric,
                "value": float(final[metric]) if completed else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


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
    scored = subset.assign(score=_signed(subset["value"], metric))
    points = scored.groupby(["lr", "beta2"], sort=False).agg(
        score=("score", "mean"),
        mean=("value", "mean"),
        n=("value", "count"),
        diverged=("status", lambda s: int((s != "completed").sum())),
    )
    points = points.reset_index()
    best = points.loc[points["score"].idxmin()]
    return {
        "lr": float(best["lr"]),
        "beta2": float(best["beta2"]),
        "score": float(best["mean"]) if np.isfinite(best["score"]) else None,
        "points": points.drop(columns="score").to_dict(orient="records"),
    }


def selection_record(grid: pd.DataFrame, task: str, optimizer: str) -> dict[str, Any]:
    """The file the seed-replicated runs read: the selected α and β2 (β1 as configured),
    how they were chosen, and every grid point's score."""
    chosen = select(grid, optimizer)
    if chosen["score"] is None:
        raise ValueError(f"{task}/{optimizer}: every grid point diverged; nothing to select")
    return {
        "task": task,
        "optimizer": optimizer,
        "selected": {"lr": chosen["lr"], "beta2": chosen["beta2"]},
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
