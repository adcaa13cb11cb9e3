"""The paper's protocol for hyper-parameters: a grid over α and β2 per task × optimizer,
scored on the validation split (never the test set), and the selected values handed to the
seed-replicated runs.

Layout (``tune: true`` and ``tuning:`` in config.yaml; rules in workflow/rules/tune.smk)::

    results/tuning/runs/<task>/<optimizer>/lr<α>_beta2<β2>/<seed>/   one grid run
    results/tuning/<task>/<optimizer>.json                          the selection
    results/tuning/<task>/grid.csv, sensitivity.csv                 every point, robustness

Score of a grid point: the mean over tuning seeds of the metric (default ``val_loss``) at
the run's last log point; a diverged seed scores +inf, so a point that diverges on any seed
is never selected over one that does not. Ties go to the first point in grid order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.analysis.finals import lower_is_better

GRID_COLUMNS = ["task", "optimizer", "lr", "beta2", "seed", "status", "metric", "value"]
SENSITIVITY_METRIC = "hparam_sensitivity"


# --- configuration ---------------------------------------------------------------------


def point_name(lr: float, beta2: float) -> str:
    """Folder name of one grid point, e.g. ``lr0.001_beta20.999``; ``repr`` round-trips
    exactly, so the value parsed back from the path is the configured one."""
    return f"lr{float(lr)!r}_beta2{float(beta2)!r}"


def tuning_seeds(tuning: Mapping[str, Any]) -> list[int]:
    from amsgrad_repro.config import normalise_seeds

    return normalise_seeds(tuning.get("seeds", 2))


def tuned_tasks(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{task: grid}`` for the enabled tasks that tuning covers (empty when tuning is off).
    Each grid has ``optimizers`` (default: the task's), ``lr``, ``beta2`` and ``epochs``."""
    from amsgrad_repro.config import enabled_tasks

    tuning = settings.get("tuning") or {}
    if not settings.get("tune", False):
        return {}
    enabled = set(enabled_tasks(settings))
    grids = {}
    for task, grid in (tuning.get("tasks") or {}).items():
        if task in enabled:
            task_settings = settings["tasks"][task]
            grids[task] = {
                "optimizers": list(grid.get("optimizers") or task_settings["optimizers"]),
                "lr": [float(v) for v in grid["lr"]],
                "beta2": [float(v) for v in grid["beta2"]],
                "epochs": int(grid.get("epochs") or task_settings["epochs"]),
            }
    return grids


def check_tuning(settings: Mapping[str, Any]) -> None:
    """Raise ConfigError for a tuning entry that cannot work: an unknown or untrainable
    task, and, for the tasks tuned in this run (``tune: true``, task enabled), an optimizer
    the task does not run or without a tunable α or β2, or no validation split."""
    from amsgrad_repro.config import ConfigError
    from amsgrad_repro.optimizers import catalogue

    specs = catalogue(settings.get("plugins"))
    tuning = settings.get("tuning") or {}
    for task, grid in (tuning.get("tasks") or {}).items():
        where = f"tuning.tasks.{task}"
        task_settings = settings["tasks"].get(task)
        if task_settings is None or task_settings["kind"] not in ("classifier", "vae"):
            raise ConfigError(f"{where}: {task!r} is not a training task under tasks:")
        if not settings.get("tune") or not task_settings.get("enabled", True):
            continue  # checked when this task is actually tuned
        if not task_settings.get("holdout_val", True):
            raise ConfigError(
                f"{where}: tuning scores on the validation split; set "
                f"tasks.{task}.holdout_val: true"
            )
        for name in grid.get("optimizers") or task_settings["optimizers"]:
            if name not in task_settings["optimizers"]:
                raise ConfigError(f"{where}.optimizers: {name!r} is not run by task {task!r}")
            rules = specs[name].hparam_rules
            for axis in ("lr", "beta2"):
                if axis not in rules or not rules[axis].tunable:
                    raise ConfigError(f"{where}.optimizers: {name!r} has no tunable {axis}")
    tuning_seeds(tuning)


def grid_settings(
    task_settings: Mapping[str, Any], optimizer: str, lr: float, beta2: float, epochs: int
) -> dict[str, Any]:
    """The task's settings for one grid point: α and β2 replaced for this optimizer (β1 and
    the schedules as configured), trained for the tuning budget."""
    from amsgrad_repro.config import deep_merge

    point = {optimizer: {"lr": lr, "beta2": beta2}}
    merged = deep_merge(task_settings, {"overrides": point})
    merged["epochs"] = epochs
    return merged


def apply_selection(
    task_settings: Mapping[str, Any], optimizer: str, selection_file: Path
) -> dict[str, Any]:
    """The task's settings with a tuning selection's α and β2 for ``optimizer``; what the
    train command's ``--hparams-file`` does."""
    from amsgrad_repro.config import ConfigError, deep_merge

    selection = json.loads(Path(selection_file).read_text())
    if selection.get("optimizer", optimizer) != optimizer:
        raise ConfigError(
            f"{selection_file}: selection is for {selection['optimizer']!r}, not {optimizer!r}"
        )
    return deep_merge(task_settings, {"overrides": {optimizer: selection["selected"]}})


# --- reading grid runs -----------------------------------------------------------------


def load_grid(run_files: Iterable[str | Path], metric: str) -> pd.DataFrame:
    """One row per grid run: its α, β2 (from the run's own record), seed, status and the
    metric at its last log point (NaN when diverged)."""
    from amsgrad_repro.config import ConfigError

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


def selection_record(
    grid: pd.DataFrame, task: str, optimizer: str, task_settings: Mapping[str, Any]
) -> dict[str, Any]:
    """The file the seed-replicated runs read: the selected α and β2 (β1 as configured),
    how they were chosen, and every grid point's score."""
    from amsgrad_repro.io import provenance

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
