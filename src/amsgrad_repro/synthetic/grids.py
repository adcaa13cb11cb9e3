"""Run a grid (``synthetic.grid_spec``) in one call of the compiled kernel, and its table.

Every problem × optimizer × cell × seed of the grid becomes one :class:`KernelRun`, and
all of them go to :func:`~amsgrad_repro.synthetic.kernel.run_batch` together, which runs
them in parallel over the job's threads (numba ``prange``): one process per grid instead of
one per run, and no run depends on the order it is computed in (counter-based gradient
draws), so every row equals the single-run kernel on that cell (``tests/test_grids.py``).

The grid's table (``results/grids/<grid>/table.csv``) has one row per run: the problem,
optimizer, cell index and axis values (and any fixed problem parameter), the seed, the
run's status, its exact final x and R_T/T, x at each recorded step (columns ``x_t<step>``)
and the optimizer's full settings in that cell (JSON). Figures and claims read it. Memory:
runs × recorded steps × 16 bytes (a 16 × 16 map of three optimizers on two problems with
10 seeds and 8 recorded steps: 2 MB).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd

from amsgrad_repro import layout
from amsgrad_repro.io import provenance, write_csv, write_json
from amsgrad_repro.optimizers import OptimizerSpec, hparams, scalar_form
from amsgrad_repro.optimizers.schedules import with_horizon
from amsgrad_repro.synthetic import BOUNDS
from amsgrad_repro.synthetic.grid_spec import GridSpec
from amsgrad_repro.synthetic.kernel import (
    HP_DTYPE,
    STATE_SIZE,
    X_SLOT,
    BatchResult,
    KernelRun,
    Prepared,
    advance,
    average_regret,
    family_index,
    hp_record,
    prepare,
    record_schedule,
    run_one,
    set_threads,
    start_states,
)
from amsgrad_repro.synthetic.problems import PARAMETER, PROBLEMS, problem_id
from amsgrad_repro.synthetic.runner import _kernel_label
from amsgrad_repro.synthetic.settle import (
    CONVERGED,
    FAILED,
    RULE,
    UNSETTLED,
    check_point,
    rounds,
    settled,
    states,
    with_check_points,
)

X_PREFIX = "x_t"  # x_t<step>: x after step <step>


@dataclass(frozen=True)
class GridRun:
    """One row of a grid: where it sits in the grid, and the settings it runs with."""

    problem: str
    optimizer: str
    cell_index: int
    cell: Mapping[str, float]
    seed: int
    settings: Any


def grid_runs(grid: GridSpec) -> list[GridRun]:
    """Every run of the grid, problem by problem, optimizer, cell, then seed."""
    runs = []
    cells = grid.cells()
    for problem in grid.problems:
        for optimizer in grid.optimizers:
            for index, cell in enumerate(cells):
                settings = grid.cell_settings(optimizer, cell)
                runs += [
                    GridRun(problem, optimizer, index, cell, seed, settings)
                    for seed in grid.seeds_for(problem)
                ]
    return runs


def kernel_run(grid: GridSpec, run: GridRun, spec: OptimizerSpec) -> KernelRun:
    """The compiled kernel's form of one grid run (a torch class runs as its twin)."""
    form = scalar_form(spec, with_horizon(run.settings, grid.steps))
    family, settings = form  # type: ignore[misc]
    return KernelRun(
        family,
        settings,
        problem_id(run.problem),
        grid.parameter(run.problem, run.cell),
        run.seed,
        grid.x1,
    )


def run_alone(
    grid: GridSpec, run: GridRun, spec: OptimizerSpec, record: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """One grid run through the single-run kernel (``kernel.run_one``), on its own: its
    final x, final R_T/T and x at the ``record`` steps (what the grid must reproduce)."""
    single = kernel_run(grid, run, spec)
    hp = np.zeros(1, dtype=HP_DTYPE)
    hp[0] = hp_record(single.settings)
    xs, regrets = np.empty(record.size), np.empty(record.size)
    final_x, final_regret = run_one(
        family_index(single.family),
        hp[0],
        single.problem,
        single.big,
        single.seed,
        grid.steps,
        grid.x1,
        BOUNDS[0],
        BOUNDS[1],
        record,
        xs,
        regrets,
    )
    return final_x, final_regret, xs


@dataclass(frozen=True)
class GridResult:
    table: pd.DataFrame
    timing: dict[str, Any]


@dataclass
class _Progress:
    """Every run of one problem while its rounds go on: the kernel's arrays, each run's
    state, x and R_t/t at the recorded steps, and the steps it has run."""

    prepared: Prepared
    states: np.ndarray
    xs: np.ndarray
    regrets: np.ndarray
    steps_run: np.ndarray
    cells: np.ndarray  # a run's cell key (optimizer × cell), to continue whole cells


def run_grid(
    grid: GridSpec, specs: Mapping[str, OptimizerSpec], threads: int | None = None
) -> GridResult:
    """Every run of the grid for ``steps``, then the cells still unsettled in rounds that
    double their length up to the problem's ``max_steps`` (``synthetic.settle``), each
    round one call of the compiled kernel on every run that goes on; and the table."""
    runs = grid_runs(grid)
    record = grid_record(grid)
    set_threads(threads)
    started = time.perf_counter()
    rows = np.arange(len(runs))
    xs = np.full((len(runs), record.size), np.nan)
    regrets = np.full((len(runs), record.size), np.nan)
    states = np.empty((len(runs), STATE_SIZE))
    steps_run = np.zeros(len(runs), dtype=np.int64)
    rounds_log = []
    for problem in grid.problems:
        mine = rows[[run.problem == problem for run in runs]]
        progress = _run_problem(grid, problem, [runs[i] for i in mine], specs, record)
        xs[mine], regrets[mine] = progress.xs, progress.regrets
        states[mine], steps_run[mine] = progress.states, progress.steps_run
        rounds_log.append({"problem": problem, "rounds": progress_rounds(progress, grid, problem)})
    elapsed = time.perf_counter() - started
    batch = BatchResult(
        record, xs, regrets, states[:, X_SLOT].copy(), average_regret(states, steps_run, BOUNDS)
    )
    used = numba.get_num_threads()
    total = int(steps_run.sum())
    timing = {
        "runs": len(runs),
        "steps_per_run": grid.steps,
        "max_steps": dict(grid.max_steps),
        "total_steps": total,
        "threads": used,
        "kernel_s": elapsed,
        "steps_per_s_per_thread": total / elapsed / used,
        "rounds": rounds_log,
    }
    return GridResult(grid_table(grid, runs, batch, steps_run), timing)


def grid_record(grid: GridSpec) -> np.ndarray:
    """The recorded steps: ``record_points`` over ``steps``, and every round's end with
    its check point for the settle rule."""
    ends = sorted({t for p in grid.problems for t in rounds(grid.steps, grid.max_steps_for(p))})
    periods = sorted({PROBLEMS[p].period or 1 for p in grid.problems})
    return with_check_points(record_schedule(grid.steps, grid.record_points), ends, periods)


def _run_problem(grid: GridSpec, problem: str, runs: list[GridRun], specs, record) -> _Progress:  # noqa: ANN001
    prepared = prepare([kernel_run(grid, run, specs[run.optimizer]) for run in runs])
    n = len(runs)
    progress = _Progress(
        prepared,
        start_states(prepared),
        np.full((n, record.size), np.nan),
        np.full((n, record.size), np.nan),
        np.zeros(n, dtype=np.int64),
        _cell_keys(runs),
    )
    going = np.arange(n)
    first = 1
    for end in rounds(grid.steps, grid.max_steps_for(problem)):
        _advance(progress, going, (first, end), record)
        unsettled = ~run_settled(problem, record, progress.xs[going], progress.regrets[going], end)
        going = going[np.isin(progress.cells[going], progress.cells[going][unsettled])]
        if going.size == 0:
            break
        first = end + 1
    return progress


def _cell_keys(runs: list[GridRun]) -> np.ndarray:
    keys: dict[tuple[str, int], int] = {}
    return np.array([keys.setdefault((r.optimizer, r.cell_index), len(keys)) for r in runs])


def _advance(progress: _Progress, going: np.ndarray, span: tuple[int, int], record) -> None:  # noqa: ANN001
    """Continue the runs ``going`` (indices) from their states over ``span``."""
    sub = progress.prepared.take(going)
    states = np.ascontiguousarray(progress.states[going])
    xs = np.ascontiguousarray(progress.xs[going])
    regrets = np.ascontiguousarray(progress.regrets[going])
    advance(sub, states, span, BOUNDS, record, (xs, regrets))
    progress.states[going], progress.xs[going], progress.regrets[going] = states, xs, regrets
    progress.steps_run[going] = span[1]


def run_settled(problem: str, record: np.ndarray, xs, regrets, end: int) -> np.ndarray:  # noqa: ANN001
    """Per run (rows of ``xs``, ``regrets`` at the ``record`` steps) whether it has
    settled at step ``end`` by the settle rule; R_t/t counts where the problem draws it."""
    half = int(np.searchsorted(record, check_point(end, PROBLEMS[problem].period)))
    last = int(np.searchsorted(record, end))
    with_regret = "avg_regret" in PROBLEMS[problem].panels
    return settled(
        xs[:, half],
        xs[:, last],
        regrets[:, half] if with_regret else None,
        regrets[:, last] if with_regret else None,
    )


def progress_rounds(progress: _Progress, grid: GridSpec, problem: str) -> list[dict[str, int]]:
    """How many runs reached each round's end (for grid.json and the timing line)."""
    ends = rounds(grid.steps, grid.max_steps_for(problem))
    return [{"end": e, "runs": int((progress.steps_run >= e).sum())} for e in ends]


def grid_table(grid: GridSpec, runs: list[GridRun], batch, steps_run: np.ndarray) -> pd.DataFrame:  # noqa: ANN001
    """One row per run (module docstring)."""
    settings_json: dict[tuple[str, int], str] = {}
    rows = []
    for run in runs:
        key = (run.optimizer, run.cell_index)
        if key not in settings_json:
            settings_json[key] = json.dumps(hparams.as_record(run.settings), sort_keys=True)
        rows.append(
            {
                "grid": grid.name,
                "problem": run.problem,
                "optimizer": run.optimizer,
                "cell": run.cell_index,
                **run.cell,
                **_parameters(grid, run),
                "seed": run.seed,
            }
        )
    table = pd.DataFrame(rows)
    finite = np.isfinite(batch.final_x) & np.isfinite(batch.final_avg_regret)
    table["status"] = np.where(finite, "completed", "diverged")
    table["steps_run"] = steps_run
    table["state"] = _states(grid, runs, batch, steps_run, finite)
    table["final_x"] = batch.final_x
    table["final_avg_regret"] = batch.final_avg_regret
    recorded = pd.DataFrame(batch.x, columns=[f"{X_PREFIX}{step}" for step in batch.steps])
    recorded = recorded.loc[:, recorded.notna().any(axis=0)]  # rounds no run reached
    table = pd.concat([table, recorded], axis=1)
    table["hparams"] = [settings_json[(r.optimizer, r.cell_index)] for r in runs]
    return table


def _states(grid: GridSpec, runs, batch, steps_run: np.ndarray, finite: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Each run's state at its last step: converged, failed or unsettled."""
    still = np.zeros(len(runs), dtype=bool)
    problems = np.array([r.problem for r in runs])
    for problem in grid.problems:
        for end in np.unique(steps_run[problems == problem]):
            mine = (problems == problem) & (steps_run == end)
            still[mine] = run_settled(
                problem, batch.steps, batch.x[mine], batch.avg_regret[mine], int(end)
            )
    return states(still, batch.final_x, grid.success_radius, finite)


def _parameters(grid: GridSpec, run: GridRun) -> dict[str, float]:
    """The fixed problem parameter a run reads (an axis value is already a column)."""
    key = PARAMETER[run.problem]
    if key is None or key in run.cell:
        return {}
    return {key: grid.parameter(run.problem, run.cell)}


def recorded_steps(table: pd.DataFrame) -> list[tuple[int, str]]:
    """(step, column) of the table's recorded x, in step order."""
    steps = [(int(c[len(X_PREFIX) :]), c) for c in table.columns if c.startswith(X_PREFIX)]
    return sorted(steps)


def read_table(path: str | Path) -> pd.DataFrame:
    """A grid's table; pandas reads floats back exactly as written (axis values match their
    declaration bit for bit, tested), so claims can select cells by value."""
    return pd.read_csv(path)


def write_grid(
    out_dir: Path,
    grid: GridSpec,
    result: GridResult,
    declaration: dict,
    specs: Mapping[str, OptimizerSpec],
) -> None:
    """The table and the grid's record: declaration, seeds run per problem, each
    optimizer's settings and engine, timing and provenance."""
    write_csv(out_dir / layout.GRID_TABLE_FILE, result.table)
    diverged = int((result.table["status"] == "diverged").sum())
    write_json(
        out_dir / layout.GRID_RECORD_FILE,
        {
            "grid": grid.name,
            "declaration": declaration,
            "cells": len(grid.cells()),
            "seeds_run": {p: list(grid.seeds_for(p)) for p in grid.problems},
            "settings": {
                name: hparams.as_record(settings) for name, settings in grid.settings.items()
            },
            # A torch.optim class runs as the native family that computes the same update.
            "engines": {name: _kernel_label(specs[name]) for name in grid.optimizers},
            "diverged_runs": diverged,
            "unsettled_runs": int((result.table["state"] == UNSETTLED).sum()),
            "settle_rule": RULE.describe(),
            "timing": result.timing,
            **provenance(),
        },
    )


def cell_summary(table: pd.DataFrame, grid: GridSpec) -> pd.DataFrame:
    """Per problem × optimizer × cell: mean and median final x over seeds, the share of
    seeds that ended within ``success_radius`` of x* = −1, mean final R_T/T, seed count,
    the seeds still unsettled, the steps run and the cell's state (:func:`cell_states`)."""
    keys = ["problem", "optimizer", "cell", *grid.axis_names]
    frame = table[[*keys, "final_x", "final_avg_regret", "seed", "status", "state"]].copy()
    frame["within"] = ((frame["final_x"] + 1.0).abs() < grid.success_radius).astype(float)
    frame["steps_run"] = table["steps_run"]
    summary = frame.groupby(keys, sort=False).agg(
        mean_x=("final_x", "mean"),
        median_x=("final_x", "median"),
        share_within=("within", "mean"),
        mean_avg_regret=("final_avg_regret", "mean"),
        seeds=("seed", "count"),
        diverged=("status", lambda s: int((s == "diverged").sum())),
        unsettled_seeds=("state", lambda s: int((s == UNSETTLED).sum())),
        steps_run=("steps_run", "max"),
    )
    summary = summary.reset_index()
    summary["state"] = cell_states(summary, grid.success_radius)
    return summary


def cell_states(summary: pd.DataFrame, radius: float) -> np.ndarray:
    """A cell's state: unsettled while any of its seeds is, else converged when its mean
    final x over seeds is within ``radius`` of x* (the claims' "reaches x*"), else failed."""
    near = (summary["mean_x"] + 1.0).abs() < radius
    out = np.where(near, CONVERGED, FAILED).astype(object)
    out[summary["unsettled_seeds"].to_numpy() > 0] = UNSETTLED
    return out


def describe_timing(timing: Mapping[str, Any]) -> str:
    rate = timing["steps_per_s_per_thread"]
    return (
        f"{timing['runs']} runs x {timing['steps_per_run']:.0e} steps = "
        f"{timing['total_steps']:.3e} steps in {timing['kernel_s']:.1f} s on "
        f"{timing['threads']} threads: {rate:.3e} steps/s per thread "
        f"({1e9 / rate if rate and math.isfinite(rate) else float('nan'):.1f} ns/step); "
        "runs reaching each round's end: "
        + "; ".join(
            f"{r['problem']} " + ", ".join(f"{x['end']:.0e}: {x['runs']}" for x in r["rounds"])
            for r in timing.get("rounds", [])
        )
    )
