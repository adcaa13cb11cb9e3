"""Run one synthetic task: every optimizer × seed, one output folder per run.

The optimizers that have a compiled scalar step (the native families, and ``torch.optim``
classes with a native twin) run together in one call of the kernel, in parallel over the
job's threads; the others (plug-ins, AdamW, RAdam, ...) take the generic tensor path with
all seeds in one optimizer, for at most the task's ``generic_steps`` (that path costs about
10^4 times more per step). Each run's ``run.json`` says which path it took and how many
steps it ran.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.io import provenance, write_csv, write_json
from amsgrad_repro.optimizers import OptimizerSpec, hparams, scalar_form, task_settings
from amsgrad_repro.optimizers.schedules import with_horizon
from amsgrad_repro.synthetic import BOUNDS
from amsgrad_repro.synthetic.generic import run_generic
from amsgrad_repro.synthetic.kernel import KernelRun, record_schedule, run_batch
from amsgrad_repro.synthetic.problems import problem_id, problem_parameter

ENGINES = ("auto", "kernel", "generic")


@dataclass(frozen=True)
class RunOutcome:
    """One optimizer × seed of a task."""

    optimizer: str
    seed: int
    engine: str
    settings: Any
    steps: np.ndarray
    x: np.ndarray
    avg_regret: np.ndarray
    final_x: float
    final_avg_regret: float
    elapsed: float


def _plan(spec: OptimizerSpec, settings: Any, engine: str):
    """The native (family, settings) that runs ``spec`` in the kernel, or None."""
    form = scalar_form(spec, settings) if engine != "generic" else None
    if engine == "kernel" and form is None:
        raise ValueError(
            f"{spec.name} has no compiled step for these settings; use the generic path"
        )
    return form


def run_task(
    task_name: str,
    task: Mapping[str, Any],
    specs: Mapping[str, OptimizerSpec],
    seeds: list[int],
    *,
    names: list[str] | None = None,
    engine: str = "auto",
    threads: int | None = None,
) -> list[RunOutcome]:
    """Every optimizer of ``task`` (or those in ``names``) for every seed."""
    steps, x1 = int(task["steps"]), float(task["x1"])
    problem, big = problem_id(task["problem"]), problem_parameter(task)
    record = record_schedule(steps, int(task["record_points"]))
    kernel_runs: list[tuple[str, Any, KernelRun]] = []
    generic: list[tuple[OptimizerSpec, Any]] = []
    for name in names or task["optimizers"]:
        spec = specs[name]
        settings = with_horizon(task_settings(spec, task_name, task), steps)
        form = _plan(spec, settings, engine)
        if form is None:
            generic.append((spec, settings))
            continue
        kernel_runs += [
            (name, settings, KernelRun(form[0], form[1], problem, big, seed, x1)) for seed in seeds
        ]
    outcomes: list[RunOutcome] = []
    if kernel_runs:
        started = time.perf_counter()
        batch = run_batch(
            [r for _, _, r in kernel_runs],
            steps=steps,
            bounds=BOUNDS,
            record=record,
            threads=threads,
        )
        elapsed = time.perf_counter() - started
        for i, (name, settings, run) in enumerate(kernel_runs):
            outcomes.append(
                RunOutcome(
                    name,
                    run.seed,
                    _kernel_label(specs[name]),
                    settings,
                    batch.steps,
                    batch.x[i],
                    batch.avg_regret[i],
                    float(batch.final_x[i]),
                    float(batch.final_avg_regret[i]),
                    elapsed / len(kernel_runs),
                )
            )
    generic_steps = min(steps, int(task.get("generic_steps") or steps))
    generic_record = record_schedule(generic_steps, int(task["record_points"]))
    for spec, settings in generic:
        started = time.perf_counter()
        result = run_generic(
            spec,
            settings,
            problem=problem,
            big=big,
            seeds=seeds,
            steps=generic_steps,
            x1=x1,
            bounds=BOUNDS,
            record=generic_record,
        )
        elapsed = (time.perf_counter() - started) / len(seeds)
        for i, seed in enumerate(seeds):
            outcomes.append(
                RunOutcome(
                    spec.name,
                    seed,
                    "generic",
                    settings,
                    result.steps,
                    result.x[i],
                    result.avg_regret[i],
                    float(result.final_x[i]),
                    float(result.final_avg_regret[i]),
                    elapsed,
                )
            )
    return outcomes


def _kernel_label(spec: OptimizerSpec) -> str:
    if spec.native is not None:
        return "kernel"
    return f"kernel (native twin: {spec.impl.twin.spec})"  # type: ignore[union-attr]


def write_run(
    out_dir: Path,
    task_name: str,
    task: Mapping[str, Any],
    spec: OptimizerSpec,
    outcome: RunOutcome,
    meta: Mapping[str, Any],
) -> None:
    frame = pd.DataFrame({"step": outcome.steps, "x": outcome.x, "avg_regret": outcome.avg_regret})
    write_csv(out_dir / "metrics.csv", frame)
    finite = math.isfinite(outcome.final_x) and math.isfinite(outcome.final_avg_regret)
    write_json(
        out_dir / "run.json",
        {
            "task": task_name,
            "optimizer": outcome.optimizer,
            "seed": outcome.seed,
            "status": "completed" if finite else "diverged",
            "settings": dict(task),
            "hparams": hparams.as_record(outcome.settings),
            "optimizer_info": {"summary": spec.summary, "source": spec.source},
            "engine": outcome.engine,
            "steps": int(outcome.steps[-1]),
            "final": {"x": outcome.final_x, "avg_regret": outcome.final_avg_regret},
            "elapsed_s": outcome.elapsed,
            **meta,
        },
    )


def run_and_write(
    task_name: str,
    task: Mapping[str, Any],
    specs: Mapping[str, OptimizerSpec],
    seeds: list[int],
    out_root: Path,
    *,
    names: list[str] | None = None,
    engine: str = "auto",
    threads: int | None = None,
) -> list[RunOutcome]:
    meta = provenance()
    outcomes = run_task(task_name, task, specs, seeds, names=names, engine=engine, threads=threads)
    for outcome in outcomes:
        out_dir = out_root / task_name / outcome.optimizer / str(outcome.seed)
        write_run(out_dir, task_name, task, specs[outcome.optimizer], outcome, meta)
        print(
            f"{task_name} {outcome.optimizer} seed {outcome.seed}: x_T+1 = "
            f"{outcome.final_x:+.4f}, R_T/T = {outcome.final_avg_regret:.4f} ({outcome.engine})",
            flush=True,
        )
    return outcomes
