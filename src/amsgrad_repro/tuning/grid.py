"""Tuning grids from the configuration: which tasks are tuned, their points, each point's
settings, and how a selection is applied to a task's settings.

Layout (``amsgrad_repro.layout``; rules in workflow/rules/tune.smk and stacked.smk)::

    results/tuning/runs/<task>/<optimizer>/<point>/<seed>/   one grid run, <point> e.g.
        lr0.001_beta20.999, lr0.001_beta20.999_weight_decay0.05 or lr0.01 (layout.point_name)
    results/tuning/<task>/<optimizer>.json                          the selection
    results/tuning/<task>/grid.csv, sensitivity.csv                 every point, robustness
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amsgrad_repro.kinds import TRAINING_KINDS
from amsgrad_repro.layout import TUNED_AXES
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.settings_base import ConfigError, deep_merge, enabled_tasks, normalise_seeds

# The axes the members of one stacked job may differ in (per-member tensors of a tunable
# hyper-parameter); a grid with any other axis (weight_decay) runs a job per point x seed.
MEMBER_AXES = ("lr", "beta2")

# How each axis is written on figures and in the report.
AXIS_SYMBOLS = {"lr": "α", "beta2": "β2", "weight_decay": "λ"}


def grid_axes(grid: Mapping[str, Any]) -> tuple[str, ...]:
    """The axes a grid sets, in TUNED_AXES order (lr always; beta2 and weight_decay when
    the grid lists values for them)."""
    return tuple(axis for axis in TUNED_AXES if axis in grid)


def axis_values(grid: Mapping[str, Any], optimizer: str | None = None) -> dict[str, list[float]]:
    """Each axis's values for ``optimizer``: its own from the entry's ``overrides`` (Nesterov
    SGD's α and L2 are not Adam's α and decoupled λ), else the entry's."""
    own = (grid.get("overrides") or {}).get(optimizer, {})
    return {axis: list(own.get(axis, grid[axis])) for axis in grid_axes(grid)}


def spoken_grid(grid: Mapping[str, Any]) -> str:
    """``α ∈ [0.001, 0.01] × λ ∈ [0.05] for adam, amsgrad; α ∈ [0.1] × λ ∈ [0.0005] for
    sgd-nesterov``: the grid in words, optimizers with the same values together."""
    groups: dict[str, list[str]] = {}
    for optimizer in grid["optimizers"]:
        values = axis_values(grid, optimizer)
        words = " × ".join(f"{AXIS_SYMBOLS[a]} ∈ {v}" for a, v in values.items())
        groups.setdefault(words, []).append(optimizer)
    return "; ".join(f"{words} for {', '.join(names)}" for words, names in groups.items())


def grid_points(grid: Mapping[str, Any], optimizer: str | None = None) -> list[dict[str, float]]:
    """The grid's points for ``optimizer`` in order: every combination of its axes' values,
    the first axis outermost (every α with every β2, then with every λ)."""
    values = axis_values(grid, optimizer)
    return [
        dict(zip(values, combination, strict=True))
        for combination in itertools.product(*values.values())
    ]


def stacks_members(grid: Mapping[str, Any]) -> bool:
    """Whether the grid's points can be members of one stacked job (only MEMBER_AXES)."""
    return set(grid_axes(grid)) <= set(MEMBER_AXES)


def tuning_seeds(tuning: Mapping[str, Any]) -> list[int]:
    return normalise_seeds(tuning.get("seeds", 2), "tuning.seeds")


def tuned_tasks(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{task: grid}`` for the enabled tasks that tuning covers (empty when tuning is off).
    Each grid has ``optimizers`` (default: the task's), ``lr``, ``epochs`` and the optional
    axes it lists: ``beta2``, ``weight_decay`` (decoupled weight decay), and ``overrides``:
    an optimizer's own values of some of those axes (``axis_values``)."""
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
                **{
                    axis: [float(v) for v in grid[axis]]
                    for axis, needed in TUNED_AXES.items()
                    if needed or axis in grid
                },
                "epochs": int(grid.get("epochs") or task_settings["epochs"]),
                "overrides": {
                    optimizer: {axis: [float(v) for v in values] for axis, values in own.items()}
                    for optimizer, own in (grid.get("overrides") or {}).items()
                },
            }
    return grids


def check_tuning(settings: Mapping[str, Any]) -> None:
    """Raise ConfigError for a tuning entry that cannot work: an unknown or untrainable
    task, and, for the tasks tuned in this run (``tune: true``, task enabled), an optimizer
    the task does not run or without a tunable α (or β2, or the weight decay, when the
    grid tunes them), or no validation split."""
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
        names = grid.get("optimizers") or task_settings["optimizers"]
        axes = grid_axes({"lr": None, **grid})
        for name, own in (grid.get("overrides") or {}).items():
            if name not in names:
                raise ConfigError(f"{where}.overrides: {name!r} is not tuned here ({names})")
            for axis in set(own) - set(axes):
                raise ConfigError(
                    f"{where}.overrides.{name}: {axis} is not an axis of this grid "
                    f"({', '.join(axes)}); every optimizer of a tuned task sets the same axes"
                )
        for name in names:
            if name not in task_settings["optimizers"]:
                raise ConfigError(f"{where}.optimizers: {name!r} is not run by task {task!r}")
            rules = specs[name].hparam_rules
            for axis in axes:
                member = axis in MEMBER_AXES
                if axis not in rules or (member and not rules[axis].tunable):
                    raise ConfigError(f"{where}.optimizers: {name!r} has no tunable {axis}")
    tuning_seeds(tuning)


def grid_settings(
    task_settings: Mapping[str, Any], optimizer: str, point: Mapping[str, float], epochs: int
) -> dict[str, Any]:
    """The task's settings for one grid point: its axes' values (α, β2, λ) replaced for this
    optimizer (β1 and the schedules as configured), trained for the tuning budget."""
    merged = deep_merge(task_settings, {"overrides": {optimizer: dict(point)}})
    merged["epochs"] = epochs
    return merged


def apply_selection(
    task_settings: Mapping[str, Any], optimizer: str, selection_file: Path
) -> dict[str, Any]:
    """The task's settings with a tuning selection's values (α, β2 and any λ) for
    ``optimizer``; what the train command's ``--hparams-file`` does."""
    selection = json.loads(Path(selection_file).read_text())
    if selection.get("optimizer", optimizer) != optimizer:
        raise ConfigError(
            f"{selection_file}: selection is for {selection['optimizer']!r}, not {optimizer!r}"
        )
    return deep_merge(task_settings, {"overrides": {optimizer: selection["selected"]}})
