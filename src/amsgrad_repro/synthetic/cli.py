"""CLI commands of the synthetic stage: ``synthetic``, ``aggregate`` and ``figure1``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from amsgrad_repro.cli import json_arg

    run = subparsers.add_parser("synthetic", help="run a synthetic problem for several seeds")
    run.add_argument("--task", required=True, help="task name, e.g. synthetic_online")
    run.add_argument("--optimizer", required=True)
    run.add_argument("--seeds", type=int, nargs="+", required=True)
    run.add_argument("--settings", type=json_arg, required=True, help="the task's settings")
    run.add_argument("--out-root", type=Path, default=Path("results/runs"))
    run.add_argument("--engine", choices=["auto", "kernel", "torch"], default="auto")
    run.set_defaults(func=_run)

    agg = subparsers.add_parser("aggregate", help="mean and bootstrap band over seeds")
    agg.add_argument("--out", type=Path, required=True)
    agg.add_argument("metrics", nargs="+", type=Path, help="every seed's metrics.csv")
    agg.set_defaults(func=_aggregate)

    fig = subparsers.add_parser("figure1", help="plot Figure 1 from the aggregates")
    fig.add_argument("--aggregate", nargs=2, action="append", metavar=("TASK", "CSV"))
    fig.add_argument("--settings", type=json_arg, required=True, help="{task: settings}")
    fig.add_argument("--seeds", type=int, required=True, help="number of seeds")
    fig.add_argument("--out", nargs="+", required=True, help="PNG/PDF paths")
    fig.set_defaults(func=_figure1)


def _run(args: argparse.Namespace) -> int:
    from amsgrad_repro.registry import OPTIMIZERS
    from amsgrad_repro.synthetic.runner import run_seeds

    if args.optimizer not in OPTIMIZERS:
        raise SystemExit(f"unknown optimizer {args.optimizer!r}; known: {sorted(OPTIMIZERS)}")
    run_seeds(args.task, args.settings, args.optimizer, args.seeds, args.out_root, args.engine)
    return 0


def _aggregate(args: argparse.Namespace) -> int:
    from amsgrad_repro.analysis.aggregate import aggregate_files

    aggregate_files(args.metrics, args.out)
    return 0


def _figure1(args: argparse.Namespace) -> int:
    from amsgrad_repro.synthetic.figure import figure1

    aggregates = {task: Path(path) for task, path in args.aggregate}
    figure1(aggregates, args.settings, args.seeds, args.out)
    return 0
