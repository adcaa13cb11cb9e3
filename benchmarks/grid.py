"""Benchmark: one grid in one call of the compiled kernel against the single-run kernel.

Builds a 16 × 16 (β1, β2) grid from the configured ``grids.beta_map`` (its first 16 values
of each axis) on the stochastic problem for one optimizer, 10 seeds × 10^6 steps
(2.56·10^9 steps), runs it as the grid job does (``synthetic.grids.run_grid``: every run in
one ``run_batch`` call on all cores), then runs every one of the same runs through the
single-run kernel (``kernel.run_one``, one call per run, one thread), checks that both give
the same final x bit for bit, and prints steps per second per core of each. The compiled
kernel is loaded (or compiled) by a tiny warm-up grid first, timed on its own.

    .venv/bin/python benchmarks/grid.py                     # adam, 16 x 16 x 10 x 10^6
    .venv/bin/python benchmarks/grid.py --optimizer amsgrad --steps 200000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import yaml

from amsgrad_repro.config import resolve
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.synthetic.grid_spec import grid_spec
from amsgrad_repro.synthetic.grids import grid_runs, run_alone, run_grid


def bench_declaration(settings: dict, optimizer: str, size: int, seeds: int, steps: int) -> dict:
    base = settings["grids"]["beta_map"]
    spec = grid_spec("beta_map", base, settings["seeds"], catalogue())
    axes = {a.name: {"values": list(a.values[:size])} for a in spec.axes}
    return dict(
        base, problems=["stochastic"], optimizers=[optimizer], axes=axes, seeds=seeds, steps=steps
    )


def single_runs(grid, specs) -> tuple[float, np.ndarray]:
    """Every run of the grid through the single-run kernel, one call each, one thread."""
    record = np.array([grid.steps])
    started = time.perf_counter()
    finals = [run_alone(grid, run, specs[run.optimizer], record)[0] for run in grid_runs(grid)]
    return time.perf_counter() - started, np.array(finals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--size", type=int, default=16, help="values per axis")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with open(args.config) as handle:
        settings = resolve(yaml.safe_load(handle))
    specs = catalogue()
    declaration = bench_declaration(settings, args.optimizer, args.size, args.seeds, args.steps)
    grid = grid_spec("bench", declaration, settings["seeds"], specs)
    warm = grid_spec("warm", dict(declaration, steps=10, seeds=1), settings["seeds"], specs)
    started = time.perf_counter()
    run_grid(warm, specs, threads=args.threads)
    print(f"kernel load/compile (warm-up grid): {time.perf_counter() - started:.1f} s")
    total = grid.run_count() * grid.steps
    print(
        f"grid: {len(grid.cells())} cells x {len(grid.seeds)} seeds x {grid.steps:.0e} steps "
        f"of {args.optimizer} on the stochastic problem = {total:.3e} steps; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    result = run_grid(grid, specs, threads=args.threads)
    timing = result.timing
    per_core = total / timing["kernel_s"] / timing["threads"]
    print(
        f"  grid kernel, one call, {timing['threads']} threads: {timing['kernel_s']:.1f} s wall, "
        f"{per_core:.3e} steps/s per core ({1e9 / per_core:.1f} ns/step)"
    )
    elapsed, finals = single_runs(grid, specs)
    single = total / elapsed
    print(
        f"  single-run kernel, {grid.run_count()} calls, 1 thread: {elapsed:.1f} s wall, "
        f"{single:.3e} steps/s per core ({1e9 / single:.1f} ns/step)"
    )
    same = np.array_equal(finals, result.table["final_x"].to_numpy())
    print(
        f"  per-core ratio grid/single: {per_core / single:.2f}; wall-time speed-up "
        f"{elapsed / timing['kernel_s']:.2f}x; final x identical: {same}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if not same:
        raise SystemExit("the grid and the single-run kernel disagree")


if __name__ == "__main__":
    main()
