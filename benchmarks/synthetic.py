"""Benchmark: the compiled synthetic kernel against the plain torch.optim loop.

Runs the same problems, optimizers and seeds both ways in one invocation and prints the
time per run, steps per second and the speed-up, plus the projected wall time of the
default-scale stage (3 problems x 4 optimizers x 10 seeds x 10^7 steps).

    .venv/bin/python benchmarks/synthetic.py             # torch loop timed on 20k steps
    .venv/bin/python benchmarks/synthetic.py --torch-steps 100000

The torch loop is far too slow to run 10^7 steps, so it is timed on a shorter run and
reported per step; the kernel is timed at full length.
"""

from __future__ import annotations

import argparse
import os
import time

import yaml

from amsgrad_repro.config import resolve
from amsgrad_repro.synthetic.runner import run_one

TASKS = ("synthetic_online", "synthetic_stochastic", "synthetic_theorem1")


def timed(task: dict, optimizer: str, seed: int, engine: str) -> float:
    started = time.perf_counter()
    run_one(task, optimizer, seed, engine)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--torch-steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=2, help="seeds timed per optimizer")
    args = parser.parse_args()
    with open(args.config) as handle:
        settings = resolve(yaml.safe_load(handle))
    print(f"cores: {os.cpu_count()}, torch threads: 1")
    print(
        f"{'task':22s} {'optimizer':14s} {'kernel steps/s':>15s} {'torch steps/s':>14s} "
        f"{'speed-up':>9s}"
    )
    kernel_total = torch_total = 0.0
    runs = 0
    for name in TASKS:
        task = settings["tasks"][name]
        short = dict(task, steps=args.torch_steps)
        for optimizer in task["optimizers"]:
            timed(task, optimizer, 0, "kernel")  # compile / load the cache outside the timing
            kernel = [timed(task, optimizer, s, "kernel") for s in range(args.seeds)]
            slow = [timed(short, optimizer, s, "torch") for s in range(args.seeds)]
            kernel_rate = task["steps"] * len(kernel) / sum(kernel)
            torch_rate = args.torch_steps * len(slow) / sum(slow)
            kernel_total += sum(kernel) / len(kernel)
            torch_total += task["steps"] / torch_rate
            runs += 1
            print(
                f"{name:22s} {optimizer:14s} {kernel_rate:15.3e} {torch_rate:14.3e} "
                f"{kernel_rate / torch_rate:8.0f}x"
            )
    seeds = len(settings["seeds"])
    print(
        f"\ndefault scale ({runs} problem x optimizer pairs, {seeds} seeds): "
        f"kernel compute {kernel_total * seeds:.1f} s on one core; "
        f"the torch loop would need about "
        f"{torch_total * seeds / 3600:.1f} h ({torch_total / kernel_total:.0f}x)"
    )


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
