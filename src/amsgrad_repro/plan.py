"""The plan of a configuration: which jobs exist, what each writes, what the targets are.

``workflow/rules/common.smk`` builds the plan once (:func:`plan`) and its rules and input
functions read it: the tasks each rule serves, the stacked jobs, the tuned tasks and the
targets of rule ``all``. Paths come from :mod:`amsgrad_repro.layout`. The plan lists every
job (rule name and outputs), so it is tested without Snakemake, and against what
``snakemake -n`` schedules for every shipped preset (``tests/test_plan.py``).

Kept free of torch: the Snakemake process plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amsgrad_repro import layout
from amsgrad_repro.kinds import SAMPLES, TRAINING_KINDS, train_rule
from amsgrad_repro.optimizers import OptimizerSpec, catalogue
from amsgrad_repro.settings_base import enabled_tasks
from amsgrad_repro.synthetic.grid_spec import enabled_grids
from amsgrad_repro.train.jobs import StackedJob, stacks, training_jobs, tunes_stacked, tuning_jobs
from amsgrad_repro.tuning import grid as tuning

# The tables rule analyse writes (results/tables/), and the pages the report embeds.
TABLE_FILES = ("finals.csv", "paired.csv", "time_to_target.csv", "claims.csv", "summary.txt")
TABLE_PAGES = ("claims.html", "statistics.html", "provenance.html", "settings.html")
# What rule cross_task writes: every optimizer against the baseline on every task.
CROSS_TASK_OUTPUTS = (layout.CROSS_TASK_TABLE.pattern, *layout.CROSS_TASK_FIGURES)


@dataclass(frozen=True)
class Job:
    """One job of the workflow: the rule that makes it and the files it writes."""

    rule: str
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """Everything a configuration asks the workflow for."""

    seeds: tuple[int, ...]
    synthetic_tasks: tuple[str, ...]
    training_tasks: tuple[str, ...]
    sample_tasks: tuple[str, ...]  # their kind's runs also write samples (kinds.SAMPLES)
    grids: tuple[str, ...]
    tuned: Mapping[str, Mapping[str, Any]]  # {task: grid} (tuning.tuned_tasks)
    tuning_seeds: tuple[int, ...]
    stacked: tuple[StackedJob, ...]
    jobs: tuple[Job, ...] = field(repr=False)
    targets: tuple[str, ...] = field(repr=False)

    train_rules: Mapping[str, tuple[str, ...]]  # {rule: its tasks} (kinds.train_rule)


def plan(settings: Mapping[str, Any]) -> Plan:
    """The plan of a resolved configuration (``config.resolve``)."""
    tasks = settings["tasks"]
    specs = catalogue(settings.get("plugins"))
    seeds = tuple(settings["seeds"])
    enabled = enabled_tasks(settings)
    synthetic = tuple(t for t in enabled if tasks[t]["kind"] == "synthetic")
    training = tuple(t for t in enabled if tasks[t]["kind"] in TRAINING_KINDS)
    with_samples = tuple(t for t in training if tasks[t]["kind"] in SAMPLES)
    plain = [t for t in training if t not in with_samples]  # stacked where they can be
    tuned = tuning.tuned_tasks(settings)
    tuning_seeds = tuple(tuning.tuning_seeds(settings.get("tuning") or {}))
    stacked = tuple(
        training_jobs(tasks, plain, specs, seeds) + tuning_jobs(tasks, tuned, specs, tuning_seeds)
    )
    grids = tuple(enabled_grids(settings))
    jobs: list[Job] = []
    jobs += _synthetic_jobs(tasks, synthetic, seeds)
    jobs += _training_jobs(tasks, training, specs, seeds)
    jobs += _tuning_jobs(tasks, tuned, specs, tuning_seeds)
    jobs += [Job(j.name, tuple(_member_files(j))) for j in stacked]
    jobs += [Job("aggregate", (layout.AGGREGATE.build(task=t),)) for t in enabled]
    jobs += [Job("train_figure", tuple(layout.figures(t))) for t in training]
    jobs += [Job("samples_figure", tuple(layout.figures(f"{t}_samples"))) for t in with_samples]
    if synthetic:
        jobs.append(Job("figure1", tuple(layout.figures("figure1"))))
    for grid in grids:
        jobs.append(
            Job("grid_run", (_grid(layout.GRID_TABLE, grid), _grid(layout.GRID_RECORD, grid)))
        )
        figure = (*layout.figures(f"grid_{grid}"), _grid(layout.GRID_CELLS, grid))
        jobs.append(Job("grid_figure", figure))
    datasets = dict.fromkeys(tasks[t]["dataset"] for t in training)
    jobs += [Job("prepare_dataset", (layout.DATASET_CACHE.build(dataset=d),)) for d in datasets]
    tables = [layout.TABLES.child(name).pattern for name in (*TABLE_FILES, *TABLE_PAGES)]
    jobs.append(Job("analyse", tuple(tables)))
    jobs.append(Job("cross_task", CROSS_TASK_OUTPUTS))
    targets = _targets(tasks, synthetic, training, tuned, grids, seeds)
    jobs.append(Job("all", ()))
    return Plan(
        seeds=seeds,
        synthetic_tasks=synthetic,
        training_tasks=training,
        sample_tasks=with_samples,
        train_rules=_train_rules(tasks, training),
        grids=grids,
        tuned=tuned,
        tuning_seeds=tuning_seeds,
        stacked=stacked,
        jobs=tuple(jobs),
        targets=tuple(targets),
    )


def runs_of(
    tasks: Mapping[str, Mapping[str, Any]], task: str, seeds: Sequence[int], name: str
) -> list[str]:
    """Every seed's file ``name`` of every optimizer of a task."""
    return [
        f"{layout.run_dir(task, optimizer, seed)}/{name}"
        for optimizer in tasks[task]["optimizers"]
        for seed in seeds
    ]


def _grid(template: layout.Template, grid: str) -> str:
    return template.build(grid=grid)


def _member_files(job: StackedJob) -> list[str]:
    return [path for name in layout.RUN_FILES for path in job.outputs(name)]


def _synthetic_jobs(tasks, names, seeds) -> list[Job]:
    """One job per synthetic task × optimizer, all seeds (each a metrics.csv and run.json)."""
    return [
        Job(
            "synthetic_run",
            tuple(
                f"{layout.run_dir(task, optimizer, seed)}/{name}"
                for name in (layout.METRICS, layout.RUN_RECORD)
                for seed in seeds
            ),
        )
        for task in names
        for optimizer in tasks[task]["optimizers"]
    ]


def run_files(kind: str) -> tuple[str, ...]:
    """The files one seed's run of a training kind writes: the run files and its samples."""
    return (*layout.RUN_FILES, *((SAMPLES[kind].file,) if kind in SAMPLES else ()))


def _train_rules(tasks, names) -> dict[str, tuple[str, ...]]:
    """Every per-seed training rule with the tasks it serves (a rule per kind with samples,
    whose jobs declare them, and rule ``train`` for the rest)."""
    rules = {train_rule(kind): () for kind in TRAINING_KINDS}
    for task in names:
        rule = train_rule(tasks[task]["kind"])
        rules[rule] = (*rules[rule], task)
    return rules


def _training_jobs(tasks, names, specs: Mapping[str, OptimizerSpec], seeds) -> list[Job]:
    """The per-seed training jobs: every seed of a task whose kind writes samples (stacked
    jobs write none), and of the other tasks' optimizers that do not stack."""
    jobs = []
    for task in names:
        kind = tasks[task]["kind"]
        for optimizer in tasks[task]["optimizers"]:
            if kind not in SAMPLES and stacks(tasks[task], specs[optimizer]):
                continue  # a stacked job (train.jobs)
            for seed in seeds:
                folder = layout.run_dir(task, optimizer, seed)
                files = tuple(f"{folder}/{name}" for name in run_files(kind))
                jobs.append(Job(train_rule(kind), files))
    return jobs


def _tuning_jobs(tasks, tuned, specs: Mapping[str, OptimizerSpec], seeds) -> list[Job]:
    """The grid runs that do not stack (rule tune_run), each tuned optimizer's selection
    (tune_select) and each tuned task's sensitivity table and figure."""
    jobs = []
    for task, grid in tuned.items():
        for optimizer in grid["optimizers"]:
            if not tunes_stacked(tasks[task], specs[optimizer], grid):
                for point in tuning.grid_points(grid, optimizer):
                    for seed in seeds:
                        folder = layout.tuning_run_dir(task, optimizer, point, seed)
                        jobs.append(
                            Job("tune_run", tuple(f"{folder}/{n}" for n in layout.RUN_FILES))
                        )
            selection = layout.SELECTION.build(task=task, optimizer=optimizer)
            jobs.append(Job("tune_select", (selection,)))
        jobs.append(
            Job(
                "sensitivity",
                (
                    layout.TUNING_GRID.build(task=task),
                    layout.SENSITIVITY.build(task=task),
                    *layout.figures(f"sensitivity_{task}"),
                ),
            )
        )
    return jobs


def _targets(tasks, synthetic, training, tuned, grids, seeds) -> list[str]:
    """What rule ``all`` asks for: every seed's run as well as the figures built from them
    (a run lost later is recomputed even though its figure still exists), the tuning
    selections and sensitivity figures, the grids' tables and figures, and the tables."""
    targets: list[str] = []
    for task in synthetic:
        targets += runs_of(tasks, task, seeds, layout.METRICS)
    if synthetic:
        targets += layout.figures("figure1")
    for task in training:
        targets += runs_of(tasks, task, seeds, layout.METRICS) + layout.figures(task)
        samples = SAMPLES.get(tasks[task]["kind"])
        if samples is not None:
            targets += runs_of(tasks, task, seeds, samples.file)
            targets += layout.figures(f"{task}_samples")
    for task, grid in tuned.items():
        targets += [layout.SELECTION.build(task=task, optimizer=o) for o in grid["optimizers"]]
        targets += layout.figures(f"sensitivity_{task}")
    targets += [_grid(layout.GRID_TABLE, grid) for grid in grids]
    targets += [path for grid in grids for path in layout.figures(f"grid_{grid}")]
    targets += [layout.TABLES.child(name).pattern for name in TABLE_FILES]
    targets += CROSS_TASK_OUTPUTS
    return targets
