"""Benchmark: the compiled synthetic kernel against the generic torch.optim path.

For every optimizer of the configured synthetic tasks, in one invocation: steps per second
of the compiled kernel (all seeds of the task at full length, on one thread) and of the
generic tensor path (every seed in one tensor, one ``optimizer.step()`` per step, timed on
a shorter run), their ratio, and the wall time of the whole default-scale compute of the
kernel optimizers on all cores.

    .venv/bin/python benchmarks/synthetic.py                      # --generic-steps 20000
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import yaml

from amsgrad_repro.config import resolve
from amsgrad_repro.optimizers import catalogue, scalar_form, task_settings
from amsgrad_repro.synthetic.runner import run_task

TASKS = ("synthetic_online", "synthetic_stochastic", "synthetic_theorem1")


def timed(task: dict, specs, seeds: list[int], names: list[str], engine: str, threads: int):
    started = time.perf_counter()
    run_task("bench", task, specs, seeds, names=names, engine=engine, threads=threads)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--generic-steps", type=int, default=20_000)
    args = parser.parse_args()
    with open(args.config) as handle:
        settings = resolve(yaml.safe_load(handle))
    specs = catalogue(settings.get("plugins"))
    seeds = settings["seeds"]
    cores = os.cpu_count() or 1
    print(f"cores: {cores}, seeds: {len(seeds)}, torch threads: 1")
    print(
        f"{'task':22s} {'optimizer':14s} {'kernel steps/s':>15s} {'generic steps/s':>16s} "
        f"{'ratio':>8s}"
    )
    compiled: dict[str, list[str]] = {}
    generic_total = 0.0
    for name in TASKS:
        task = settings["tasks"][name]
        short = dict(task, steps=args.generic_steps)
        for optimizer in task["optimizers"]:
            spec = specs[optimizer]
            has_kernel = scalar_form(spec, task_settings(spec, name, task)) is not None
            slow = timed(short, specs, seeds, [optimizer], "generic", 1)
            generic_rate = args.generic_steps * len(seeds) / slow
            if has_kernel:
                compiled.setdefault(name, []).append(optimizer)
                timed(short, specs, seeds[:1], [optimizer], "kernel", 1)  # load the cache
                fast = timed(task, specs, seeds, [optimizer], "kernel", 1)
                kernel_rate = task["steps"] * len(seeds) / fast
                ratio = f"{kernel_rate / generic_rate:7.0f}x"
                kernel_text = f"{kernel_rate:15.3e}"
            else:
                ran = min(task["steps"], task.get("generic_steps") or task["steps"])
                generic_total += ran / args.generic_steps * slow
                kernel_text, ratio = f"{'(none)':>15s}", f"{'':>8s}"
                print(
                    f"   {optimizer} on the generic path: 10^6 steps x {len(seeds)} seeds would "
                    f"take {1e6 / args.generic_steps * slow / 60:.1f} min"
                )
            print(f"{name:22s} {optimizer:14s} {kernel_text} {generic_rate:16.3e} {ratio}")
    numba.set_num_threads(cores)
    started = time.perf_counter()
    finals = {
        name: run_task(
            name, settings["tasks"][name], specs, seeds, names=names, engine="kernel", threads=cores
        )
        for name, names in compiled.items()
    }
    wall = time.perf_counter() - started
    runs = sum(len(n) for n in compiled.values()) * len(seeds)
    print(
        f"\ndefault scale, compiled optimizers ({runs} runs of "
        f"{settings['tasks'][TASKS[0]]['steps']:.0e} steps): {wall:.1f} s wall on {cores} cores"
    )
    if generic_total:
        print(
            f"generic-path optimizers at their configured length (generic_steps): about "
            f"{generic_total / 60:.1f} min on one core (projected from the timed runs)"
        )
    print("\nmean final x over seeds (min … max) at the default setting")
    for name, outcomes in finals.items():
        by_optimizer: dict[str, list[float]] = {}
        for outcome in outcomes:
            by_optimizer.setdefault(outcome.optimizer, []).append(outcome.final_x)
        for optimizer, xs in by_optimizer.items():
            print(
                f"  {name:22s} {optimizer:14s} {sum(xs) / len(xs):+.4f} "
                f"({min(xs):+.4f} … {max(xs):+.4f})"
            )


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
