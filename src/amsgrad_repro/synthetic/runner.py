"""Run one synthetic task: every optimizer × seed, one output folder per run.

The optimizers that have a compiled scalar step (the native families, and ``torch.optim``
classes with a native twin) run together in one call of the kernel, in parallel over the
job's threads; the others (plug-ins, AdamW, RAdam, ...) take the generic tensor path with
all seeds in one optimizer, for at most the task's ``generic_steps`` (that path costs about
10^4 times more per step). Each run's ``run.json`` says which path it took and how many
steps it ran.

What a run records (:func:`record_plan`): about ``record_points`` steps, and on a periodic
problem (period P) only steps of one phase, t ≡ T (mod P) with T the run's last step, so
that its curve compares like with like (a run jumping between −1 and +1 within each period
would otherwise draw a solid block); at each such point the range of x and R_t/t over the
P steps ending there (``x_period_min`` … in ``metrics.csv``) shows the oscillation. The
settle rule's check point is always one of the points, and every run ends with its state,
converged, failed or unsettled (``synthetic.settle``), in ``run.json``.
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

from amsgrad_repro import layout
from amsgrad_repro.io import provenance, write_csv, write_json
from amsgrad_repro.optimizers import OptimizerSpec, hparams, scalar_form, task_settings
from amsgrad_repro.optimizers.schedules import with_horizon
from amsgrad_repro.synthetic import BOUNDS
from amsgrad_repro.synthetic.generic import run_generic
from amsgrad_repro.synthetic.kernel import (
    X_SLOT,
    KernelRun,
    advance,
    average_regret,
    prepare,
    record_schedule,
    set_threads,
    start_states,
)
from amsgrad_repro.synthetic.problems import (
    PERIOD_RANGE,
    PROBLEMS,
    problem_id,
    problem_parameter,
)
from amsgrad_repro.synthetic.settle import (
    DEFAULT_SUCCESS_RADIUS,
    RULE,
    UNSETTLED,
    check_point,
    rounds,
    trajectory_state,
    with_check_points,
)

ENGINES = ("auto", "kernel", "generic")
# At most this many steps are held per run at once while recording the periods' ranges
# (runs x CHUNK x 16 bytes: 100 runs, 8 MB).
CHUNK = 1 << 16


@dataclass(frozen=True)
class RecordPlan:
    """The steps a run of ``steps`` steps records: ``points`` (what ``metrics.csv`` holds)
    and ``windows``, every step of each point's window (the ``period`` steps ending at it,
    from step 1 at most: windows never overlap, the points lie a multiple of the period
    apart), ``starts`` the index in ``windows`` where each point's window begins."""

    points: np.ndarray
    windows: np.ndarray
    starts: np.ndarray
    period: int

    def reduce(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value at each point, min and max over its window) of runs × ``windows``."""
        ends = np.append(self.starts[1:], self.windows.size) - 1
        with np.errstate(invalid="ignore"):
            low = np.minimum.reduceat(values, self.starts, axis=1)
            high = np.maximum.reduceat(values, self.starts, axis=1)
        return values[:, ends], low, high


def max_steps(task: Mapping[str, Any]) -> int:
    """The task's continuation budget: its ``max_steps``, else ``steps`` (none)."""
    return int(task.get("max_steps") or task["steps"])


def task_rounds(steps: int, max_steps: int, period: int | None) -> list[int]:
    """The ends of a task's continuation rounds (``settle.rounds``: steps, 2·steps … up
    to ``max_steps``), each moved down to the phase of ``steps`` on a periodic problem, so
    that one phase-aligned record plan serves a run whichever round it stops at."""
    p = int(period or 1)
    ends = [end - (end - steps) % p for end in rounds(steps, max_steps)]
    return sorted(set(ends))


def record_plan(
    steps: int, points: int, period: int | None, ends: list[int] | None = None
) -> RecordPlan:
    """About ``points`` steps of a run of ``steps`` (``kernel.record_schedule``) and the
    settle rule's check point; with continuation ``ends`` (:func:`task_rounds`), those of
    a run of each end. On a periodic problem each is moved down to the phase of ``steps``
    (the first period's points, below it, dropped)."""
    p = int(period or 1)
    ends = ends or [steps]
    schedule = np.unique(np.concatenate([record_schedule(end, points) for end in ends]))
    phase = steps % p
    aligned = schedule - (schedule - phase) % p
    aligned = with_check_points(aligned[aligned >= 1], ends, [p])
    starts_at = np.maximum(aligned - p + 1, 1)
    windows = np.concatenate([np.arange(a, b + 1) for a, b in zip(starts_at, aligned, strict=True)])
    sizes = aligned - starts_at + 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return RecordPlan(aligned, windows.astype(np.int64), starts, p)


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
    ranges: dict[str, tuple[np.ndarray, np.ndarray]]  # metric: (min, max) per period
    state: str  # converged, failed or unsettled (synthetic.settle)


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
    """Every optimizer of ``task`` (or those in ``names``) for every seed; on the kernel,
    an optimizer any of whose seeds is still unsettled at ``steps`` goes on, all seeds
    together, in rounds that double its length up to the task's ``max_steps``
    (:func:`task_rounds`; without it, none). The schedule's horizon stays ``steps``, as
    in the grids, so a run continued to T is the run of T steps with that horizon."""
    steps, x1 = int(task["steps"]), float(task["x1"])
    problem, big = problem_id(task["problem"]), problem_parameter(task)
    period = PROBLEMS[task["problem"]].period
    ends = task_rounds(steps, max_steps(task), period)
    plan = record_plan(steps, int(task["record_points"]), period, ends)
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
    judge = _Judge(task)
    outcomes: list[RunOutcome] = []
    if kernel_runs:
        started = time.perf_counter()
        groups = _optimizer_groups(kernel_runs)
        recorded = run_kernel([r for _, _, r in kernel_runs], ends, plan, threads, judge, groups)
        elapsed = time.perf_counter() - started
        for i, (name, settings, run) in enumerate(kernel_runs):
            label = _kernel_label(specs[name])
            parts = (name, run.seed, label, settings, plan, recorded, i)
            outcomes.append(judge.outcome(*parts, elapsed / len(kernel_runs)))
    generic_steps = min(steps, int(task.get("generic_steps") or steps))
    generic_plan = record_plan(generic_steps, int(task["record_points"]), period)
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
            record=generic_plan.windows,
        )
        elapsed = (time.perf_counter() - started) / len(seeds)
        steps_run = np.full(len(seeds), generic_plan.points[-1], dtype=np.int64)
        recorded = Recorded(
            result.x, result.avg_regret, result.final_x, result.final_avg_regret, steps_run
        )
        for i, seed in enumerate(seeds):
            parts = (spec.name, seed, "generic", settings, generic_plan, recorded, i)
            outcomes.append(judge.outcome(*parts, elapsed))
    return outcomes


def _optimizer_groups(kernel_runs: list[tuple[str, Any, KernelRun]]) -> np.ndarray:
    """Each kernel run's optimizer as an index: the seeds that continue together."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(name, len(index)) for name, _, _ in kernel_runs])


@dataclass(frozen=True)
class Recorded:
    """runs × ``RecordPlan.windows``: x and R_t/t (NaN past a run's end); per run the exact
    final values and the steps it ran."""

    x: np.ndarray
    avg_regret: np.ndarray
    final_x: np.ndarray
    final_avg_regret: np.ndarray
    steps_run: np.ndarray


def run_kernel(  # noqa: PLR0913
    runs: list[KernelRun],
    ends: list[int],
    plan: RecordPlan,
    threads: int | None = None,
    judge: _Judge | None = None,
    groups: np.ndarray | None = None,
) -> Recorded:
    """Every run to ``ends[0]`` in the compiled kernel, recording ``plan.windows``; then,
    round by round, the runs of every group (``groups``, an optimizer's seeds) with a run
    that ``judge`` finds unsettled go on to the next end. Each round advances in spans of
    at most about :data:`CHUNK` recorded steps, each from the state the last one left
    (the same run as one call, bit for bit: ``kernel.run_span``)."""
    prepared = prepare(runs)
    set_threads(threads)
    states = start_states(prepared)
    n = len(runs)
    xs = np.full((n, plan.windows.size), np.nan)
    regrets = np.full((n, plan.windows.size), np.nan)
    steps_run = np.zeros(n, dtype=np.int64)
    groups = np.zeros(n, dtype=np.int64) if groups is None else groups
    going, first = np.arange(n), 1
    for end in ends:
        sub = prepared.take(going)
        sub_states = np.ascontiguousarray(states[going])
        out = (np.ascontiguousarray(xs[going]), np.ascontiguousarray(regrets[going]))
        _advance_chunked(sub, sub_states, plan, (first, end), out)
        states[going], xs[going], regrets[going] = sub_states, out[0], out[1]
        steps_run[going] = end
        if judge is None or end == ends[-1]:
            break
        unsettled = [judge.state_at(plan, xs[i], regrets[i], end) == UNSETTLED for i in going]
        going = going[np.isin(groups[going], groups[going][np.array(unsettled, dtype=bool)])]
        if going.size == 0:
            break
        first = end + 1
    final_regret = average_regret(states, steps_run, BOUNDS)
    return Recorded(xs, regrets, states[:, X_SLOT].copy(), final_regret, steps_run)


def _advance_chunked(prepared, states, plan: RecordPlan, span: tuple[int, int], out) -> None:  # noqa: ANN001
    """Steps ``span`` of every run in ``prepared``, recording the windows inside it."""
    first, last = span
    begin = int(np.searchsorted(plan.windows, first))
    stop_at = int(np.searchsorted(plan.windows, last, side="right"))
    if stop_at == 0 or plan.windows[stop_at - 1] != last:
        raise ValueError(f"the record plan has no point at step {last}")
    while begin < stop_at:
        # whole windows only: the span ends at a point (the last step of a window)
        stop = plan.starts[(plan.starts > begin + CHUNK) & (plan.starts < stop_at)]
        stop = int(stop[0]) if stop.size else stop_at
        record = np.ascontiguousarray(plan.windows[begin:stop])
        part = tuple(np.full((len(states), record.size), np.nan) for _ in range(2))
        chunk_last = int(record[-1])
        advance(prepared, states, (first, chunk_last), BOUNDS, record, part)
        out[0][:, begin:stop], out[1][:, begin:stop] = part
        first, begin = chunk_last + 1, stop


class _Judge:
    """Makes a run's outcome from what it recorded: its curve at the points, the ranges
    over each period, and its state by the settle rule."""

    def __init__(self, task: Mapping[str, Any]) -> None:
        problem = PROBLEMS[task["problem"]]
        self.period = problem.period
        self.with_regret = "avg_regret" in problem.panels
        self.radius = float(task.get("success_radius", DEFAULT_SUCCESS_RADIUS))

    def outcome(self, name, seed, engine, settings, plan, recorded, i, elapsed) -> RunOutcome:  # noqa: ANN001, PLR0913
        """Run ``i`` of ``recorded`` at the points up to its own last step."""
        kept = plan.points <= recorded.steps_run[i]
        x, x_low, x_high = (a[0][kept] for a in plan.reduce(recorded.x[i : i + 1]))
        r, r_low, r_high = (a[0][kept] for a in plan.reduce(recorded.avg_regret[i : i + 1]))
        state = self.state(plan.points[kept], x, r)
        ranges = {"x": (x_low, x_high), "avg_regret": (r_low, r_high)}
        return RunOutcome(
            name,
            int(seed),
            engine,
            settings,
            plan.points[kept],
            x,
            r,
            float(recorded.final_x[i]),
            float(recorded.final_avg_regret[i]),
            elapsed,
            ranges if plan.period > 1 else {},
            state,
        )

    def state_at(self, plan: RecordPlan, x: np.ndarray, regret: np.ndarray, end: int) -> str:
        """The state of one run's ``plan.windows`` row after its first ``end`` steps."""
        values, _, _ = plan.reduce(np.stack([x, regret]))
        kept = plan.points <= end
        return self.state(plan.points[kept], values[0][kept], values[1][kept])

    def state(self, points: np.ndarray, x: np.ndarray, regret: np.ndarray) -> str:
        """The settle rule on the points (a non-finite last x: failed)."""
        regret_used = regret if self.with_regret else None
        return trajectory_state(points, x, self.radius, self.period, regret_used)


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
    for metric, (low, high) in outcome.ranges.items():
        frame[PERIOD_RANGE[metric][0]], frame[PERIOD_RANGE[metric][1]] = low, high
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
            "max_steps": max_steps(task),
            "continued": int(outcome.steps[-1]) > int(task["steps"]),
            "final": {"x": outcome.final_x, "avg_regret": outcome.final_avg_regret},
            "state": outcome.state,
            "settle": _settle_record(task, int(outcome.steps[-1])),
            "elapsed_s": outcome.elapsed,
            **meta,
        },
    )


def _settle_record(task: Mapping[str, Any], steps: int) -> dict[str, Any]:
    """How the run's state was decided: the rule, the steps compared, the radius."""
    period = PROBLEMS[task["problem"]].period
    return {
        "rule": RULE.describe(),
        "check_point": check_point(steps, period),
        "end": steps,
        "period": period,
        "success_radius": float(task.get("success_radius", DEFAULT_SUCCESS_RADIUS)),
    }


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
        out_dir = out_root / layout.RUN_IN_RUNS.build(
            task=task_name, optimizer=outcome.optimizer, seed=outcome.seed
        )
        write_run(out_dir, task_name, task, specs[outcome.optimizer], outcome, meta)
        print(
            f"{task_name} {outcome.optimizer} seed {outcome.seed}: x_T+1 = "
            f"{outcome.final_x:+.4f}, R_T/T = {outcome.final_avg_regret:.4f}, {outcome.state} "
            f"({outcome.engine})",
            flush=True,
        )
    return outcomes
