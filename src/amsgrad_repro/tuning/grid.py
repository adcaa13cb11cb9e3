"""Tuning grids from the configuration: which tasks are tuned, their points, each point's
settings, and how a selection is applied to a task's settings.

Layout (``amsgrad_repro.layout``; rules in workflow/rules/tune.smk and stacked.smk)::

    results/tuning/runs/<task>/<optimizer>/lr<α>_beta2<β2>/<seed>/   one grid run
    results/tuning/<task>/<optimizer>.json                          the selection
    results/tuning/<task>/grid.csv, sensitivity.csv                 every point, robustness
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amsgrad_repro.kinds import TRAINING_KINDS
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.settings_base import ConfigError, deep_merge, enabled_tasks, normalise_seeds

# The hyper-parameters a tuning grid sets at each of its points.
TUNED_AXES = ("lr", "beta2")


def grid_points(grid: Mapping[str, Any]) -> list[dict[str, float]]:
    """The grid's points in order: every α with every β2."""
    return [{"lr": lr, "beta2": beta2} for lr in grid["lr"] for beta2 in grid["beta2"]]


def tuning_seeds(tuning: Mapping[str, Any]) -> list[int]:
    return normalise_seeds(tuning.get("seeds", 2), "tuning.seeds")


def tuned_tasks(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{task: grid}`` for the enabled tasks that tuning covers (empty when tuning is off).
    Each grid has ``optimizers`` (default: the task's), ``lr``, ``beta2`` and ``epochs``."""
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
    specs = catalogue(settings.get("plugins"))
    tuning = settings.get("tuning") or {}
    for task, grid in (tuning.get("tasks") or {}).items():
        where = f"tuning.tasks.{task}"
        task_settings = settings["tasks"].get(task)
        if task_settings is None or task_settings["kind"] not in TRAINING_KINDS:
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
    point = {optimizer: {"lr": lr, "beta2": beta2}}
    merged = deep_merge(task_settings, {"overrides": point})
    merged["epochs"] = epochs
    return merged


def apply_selection(
    task_settings: Mapping[str, Any], optimizer: str, selection_file: Path
) -> dict[str, Any]:
    """The task's settings with a tuning selection's α and β2 for ``optimizer``; what the
    train command's ``--hparams-file`` does."""
    selection = json.loads(Path(selection_file).read_text())
    if selection.get("optimizer", optimizer) != optimizer:
        raise ConfigError(
            f"{selection_file}: selection is for {selection['optimizer']!r}, not {optimizer!r}"
        )
    return deep_merge(task_settings, {"overrides": {optimizer: selection["selected"]}})
