"""Which training jobs a configuration asks for, as data the workflow turns into rules.

A training task with ``stack: seeds`` runs each optimizer's seeds as one stacked job (one
process, one model: ``train.stacked``) when the optimizer is elementwise (every built-in;
a plug-in if it says so); otherwise, and for ``stack: none`` (or ``off``), one job per seed (rule
``train``). Under tuning, a native optimizer's whole grid (points × tuning seeds) is one
stacked job, its members differing in α and β2; a ``torch.optim`` class, which takes one
α for all its parameters, gets one stacked job per grid point.

Kept free of torch: the Snakemake process plans the jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amsgrad_repro import layout
from amsgrad_repro.layout import RUN_FILES
from amsgrad_repro.optimizers import OptimizerSpec
from amsgrad_repro.run_settings import job_settings
from amsgrad_repro.tuning.grid import grid_axes, grid_points, stacks_members

__all__ = [
    "RUN_FILES",
    "StackedJob",
    "StackedMember",
    "stacks",
    "training_jobs",
    "tunes_stacked",
    "tuning_jobs",
]


@dataclass(frozen=True)
class StackedMember:
    seed: int
    out: str
    hparams: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "out": self.out, "hparams": dict(self.hparams)}


@dataclass(frozen=True)
class StackedJob:
    """One stacked job: its rule name, task × optimizer, members and settings (its own,
    ``run_settings.job_settings``: another optimizer's change leaves the job as it is)."""

    name: str
    task: str
    optimizer: str
    members: tuple[StackedMember, ...]
    settings: Mapping[str, Any]
    checkpoint_dir: str
    log: str
    benchmark: str
    tuning: bool = False

    def outputs(self, filename: str) -> list[str]:
        return [f"{m.out}/{filename}" for m in self.members]


def stacks(task: Mapping[str, Any], spec: OptimizerSpec) -> bool:
    """Whether this task × optimizer trains its seeds as one stacked job."""
    return task.get("stack") == "seeds" and spec.elementwise


def tunes_stacked(task: Mapping[str, Any], spec: OptimizerSpec, grid: Mapping[str, Any]) -> bool:
    """Whether this task × optimizer's tuning grid runs as stacked jobs (else rule
    ``tune_run``, one job per point × seed): it stacks, and its grid's axes may vary across
    members."""
    return stacks(task, spec) and stacks_members(grid)


def training_jobs(
    tasks: Mapping[str, Mapping[str, Any]],
    names: Sequence[str],
    specs: Mapping[str, OptimizerSpec],
    seeds: Sequence[int],
) -> list[StackedJob]:
    """The stacked jobs of the seed-replicated runs of the tasks ``names``."""
    jobs = []
    for task_name in names:
        task = tasks[task_name]
        for optimizer in task["optimizers"]:
            if not stacks(task, specs[optimizer]):
                continue
            members = tuple(
                StackedMember(seed, layout.run_dir(task_name, optimizer, seed), {})
                for seed in seeds
            )
            jobs.append(
                _job(
                    "train",
                    task_name,
                    optimizer,
                    members,
                    job_settings(task_name, task, specs[optimizer]),
                    "stacked",
                )
            )
    return jobs


def tuning_jobs(
    tasks: Mapping[str, Mapping[str, Any]],
    grids: Mapping[str, Mapping[str, Any]],
    specs: Mapping[str, OptimizerSpec],
    seeds: Sequence[int],
) -> list[StackedJob]:
    """The stacked jobs of the tuning grids (``tuning.tuned_tasks``) of stacked tasks whose
    axes members may differ in (``tuning.grid.stacks_members``)."""
    jobs = []
    for task_name, grid in grids.items():
        task = tasks[task_name]
        for optimizer in grid["optimizers"]:
            spec = specs[optimizer]
            if not tunes_stacked(task, spec, grid):
                continue
            settings = job_settings(task_name, {**task, "epochs": grid["epochs"]}, spec)
            # Every member sets the grid's axes: the task's own α and β2 are not the job's.
            axes = grid_axes(grid)
            settings["hparams"] = {k: v for k, v in settings["hparams"].items() if k not in axes}
            points = grid_points(grid, optimizer)
            groups = [points] if spec.native is not None else [[p] for p in points]
            for group in groups:
                label = layout.GRID_LABEL if len(group) > 1 else layout.point_name(group[0])
                members = tuple(
                    StackedMember(seed, layout.tuning_run_dir(task_name, optimizer, p, seed), p)
                    for p in group
                    for seed in seeds
                )
                jobs.append(
                    _job(
                        "tune",
                        task_name,
                        optimizer,
                        members,
                        settings,
                        label,
                    )
                )
    return jobs


def _job(
    stage: str,
    task: str,
    optimizer: str,
    members: tuple[StackedMember, ...],
    settings: Mapping[str, Any],
    label: str,
) -> StackedJob:
    """A stacked job of ``stage`` (``train`` or ``tune``): its rule name and its checkpoint,
    log and benchmark paths (``layout``) follow from the task, optimizer and ``label``."""
    tuning = stage == "tune"
    where = {"task": task, "optimizer": optimizer, "label": label}
    if tuning:
        name = layout.tune_stacked_rule(task, optimizer, label)
        checkpoints, job = layout.TUNE_STACKED_CHECKPOINTS, layout.Template(layout.TUNE_STACKED_JOB)
    else:
        name = layout.stacked_rule(task, optimizer)
        checkpoints, job = layout.STACKED_CHECKPOINTS, layout.Template(layout.STACKED_JOB)
    values = {k: v for k, v in where.items() if k in job.fields}
    return StackedJob(
        name=name,
        task=task,
        optimizer=optimizer,
        members=members,
        settings=settings,
        checkpoint_dir=checkpoints.build(**{k: where[k] for k in checkpoints.fields}),
        log=layout.log(job.build(**values)),
        benchmark=layout.benchmark(job.build(**values)),
        tuning=tuning,
    )
