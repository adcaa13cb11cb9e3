"""CLI commands of the synthetic stage: ``synthetic``, ``aggregate`` and ``figure1``."""

from __future__ import annotations

import argparse
from pathlib import Path

from amsgrad_repro import layout
from amsgrad_repro.cli import json_arg
from amsgrad_repro.optimizers import catalogue


def register(subparsers: argparse._SubParsersAction) -> None:

    run = subparsers.add_parser(
        "synthetic", help="run a synthetic task for one optimizer (or all) and every seed"
    )
    run.add_argument("--task", required=True, help="task name, e.g. synthetic_online")
    run.add_argument("--optimizer", help="one of the task's optimizers (default: all)")
    run.add_argument("--seeds", type=int, nargs="+", required=True)
    run.add_argument("--settings", type=json_arg, required=True, help="the task's settings")
    run.add_argument("--plugins", type=json_arg, default={}, help="plug-in declarations")
    run.add_argument("--out-root", type=Path, default=Path(layout.RUNS.pattern))
    run.add_argument("--engine", choices=["auto", "kernel", "generic"], default="auto")
    run.add_argument("--threads", type=int, default=0, help="kernel threads (0: numba's)")
    run.set_defaults(func=_run)

    agg = subparsers.add_parser("aggregate", help="mean and 95%% Student-t band over seeds")
    agg.add_argument("--out", type=Path, required=True)
    agg.add_argument("metrics", nargs="+", type=Path, help="every seed's metrics.csv")
    agg.set_defaults(func=_aggregate)

    fig = subparsers.add_parser("figure1", help="plot Figure 1 from the aggregates")
    fig.add_argument("--aggregate", nargs=2, action="append", metavar=("TASK", "CSV"))
    fig.add_argument("--runs", type=Path, nargs="+", required=True, help="run.json files")
    fig.add_argument("--out", nargs="+", required=True, help="PNG/PDF paths")
    fig.set_defaults(func=_figure1)


def _run(args: argparse.Namespace) -> int:
    # here, not at the top: it loads numba, pandas
    from amsgrad_repro.synthetic.runner import run_and_write

    specs = catalogue(args.plugins)
    names = [args.optimizer] if args.optimizer else list(args.settings["optimizers"])
    unknown = [n for n in names if n not in args.settings["optimizers"]]
    if unknown:
        raise SystemExit(f"{unknown[0]!r} is not an optimizer of task {args.task!r}")
    run_and_write(
        args.task,
        args.settings,
        specs,
        args.seeds,
        args.out_root,
        names=names,
        engine=args.engine,
        threads=args.threads or None,
    )
    return 0


def _aggregate(args: argparse.Namespace) -> int:
    # here, not at the top: it loads pandas
    from amsgrad_repro.summaries.aggregate import aggregate_files

    aggregate_files(args.metrics, args.out)
    return 0


def _figure1(args: argparse.Namespace) -> int:
    # here, not at the top: it loads matplotlib, pandas, seaborn
    from amsgrad_repro.synthetic.figure import figure1

    aggregates = {task: Path(path) for task, path in args.aggregate}
    figure1(aggregates, args.runs, args.out)
    return 0
