"""Run one synthetic task for one optimizer over several seeds; one output folder per seed.

A job runs several seeds because each run takes a fraction of a second and process
start-up would otherwise dominate; each seed still gets its own ``metrics.csv`` and
``run.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from amsgrad_repro.config import optimizer_hparams
from amsgrad_repro.io import provenance, write_csv, write_json
from amsgrad_repro.registry import OPTIMIZERS, resolve_hparams
from amsgrad_repro.synthetic import BOUNDS
from amsgrad_repro.synthetic.kernel import KernelResult, record_schedule, run_kernel
from amsgrad_repro.synthetic.problems import problem_id
from amsgrad_repro.synthetic.reference import run_reference


def run_one(task: dict[str, Any], optimizer: str, seed: int, engine: str = "auto") -> tuple:
    """Run one seed; returns (result, engine used, resolved hyper-parameters)."""
    hparams = resolve_hparams(optimizer, optimizer_hparams(task, optimizer))
    spec = OPTIMIZERS[optimizer]
    use_kernel = engine == "kernel" or (engine == "auto" and spec.kernel_flags is not None)
    if use_kernel and spec.kernel_flags is None:
        raise ValueError(f"optimizer {optimizer!r} has no compiled kernel; use engine=torch")
    common = dict(
        problem=problem_id(task["problem"]),
        big=float(task.get("C", 0.0)),
        seed=seed,
        steps=int(task["steps"]),
        x1=float(task["x1"]),
        bounds=BOUNDS,
        record=record_schedule(int(task["steps"]), int(task["record_points"])),
    )
    if use_kernel:
        result = run_kernel(flags=spec.kernel_flags(hparams), **common)
    else:
        result = run_reference(optimizer=optimizer, hparams=hparams, **common)
    return result, ("kernel" if use_kernel else "torch"), hparams


def write_run(
    out_dir: Path,
    *,
    task_name: str,
    task: dict[str, Any],
    optimizer: str,
    seed: int,
    result: KernelResult,
    engine: str,
    hparams: dict[str, Any],
    elapsed: float,
    meta: dict[str, Any],
) -> None:
    frame = pd.DataFrame({"step": result.steps, "x": result.x, "avg_regret": result.avg_regret})
    write_csv(out_dir / "metrics.csv", frame)
    write_json(
        out_dir / "run.json",
        {
            "task": task_name,
            "optimizer": optimizer,
            "seed": seed,
            "status": "completed",
            "settings": task,
            "hparams": hparams,
            "engine": engine,
            "final": {"x": result.final_x, "avg_regret": result.final_avg_regret},
            "elapsed_s": elapsed,
            **meta,
        },
    )


def run_seeds(
    task_name: str,
    task: dict[str, Any],
    optimizer: str,
    seeds: list[int],
    out_root: Path,
    engine: str = "auto",
) -> None:
    meta = provenance()
    for seed in seeds:
        started = time.perf_counter()
        result, used, hparams = run_one(task, optimizer, seed, engine)
        elapsed = time.perf_counter() - started
        write_run(
            out_root / task_name / optimizer / str(seed),
            task_name=task_name,
            task=task,
            optimizer=optimizer,
            seed=seed,
            result=result,
            engine=used,
            hparams=hparams,
            elapsed=elapsed,
            meta=meta,
        )
        print(
            f"{task_name} {optimizer} seed {seed}: x_T+1 = {result.final_x:+.4f}, "
            f"R_T/T = {result.final_avg_regret:.4f} ({used}, {elapsed:.2f} s)",
            flush=True,
        )
