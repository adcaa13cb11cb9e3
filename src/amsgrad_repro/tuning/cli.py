"""CLI commands of the tuning stage: ``tune-select`` (pick α, β2 and any λ on the validation split)
and ``sensitivity`` (robustness table and figure)."""

from __future__ import annotations

import argparse
from pathlib import Path

from amsgrad_repro.cli import json_arg
from amsgrad_repro.io import write_csv, write_json


def register(subparsers: argparse._SubParsersAction) -> None:

    select = subparsers.add_parser(
        "tune-select", help="select the grid point of one task × optimizer on the validation split"
    )
    select.add_argument("--task", required=True)
    select.add_argument("--optimizer", required=True)
    select.add_argument("--metric", default="val_loss")
    select.add_argument("--runs", nargs="+", type=Path, required=True, help="grid run.json")
    select.add_argument("--out", type=Path, required=True)
    select.set_defaults(func=_tune_select)

    sens = subparsers.add_parser(
        "sensitivity", help="hyper-parameter sensitivity table and figure of one task"
    )
    sens.add_argument("--task", required=True)
    sens.add_argument("--settings", type=json_arg, required=True, help="the task's JSON")
    sens.add_argument("--metric", default="val_loss")
    sens.add_argument("--epochs", type=int, required=True, help="the tuning runs' epochs")
    sens.add_argument("--runs", nargs="+", type=Path, required=True, help="grid run.json")
    sens.add_argument("--grid-out", type=Path, required=True)
    sens.add_argument("--sensitivity-out", type=Path, required=True)
    sens.add_argument("--figure", type=Path, nargs="+", required=True, help="PNG and/or PDF")
    sens.set_defaults(func=_sensitivity)


def _tune_select(args: argparse.Namespace) -> int:
    # here, not at the top: it loads pandas
    from amsgrad_repro.tuning.select import load_grid, selection_record

    grid = load_grid(args.runs, args.metric)
    record = selection_record(grid, args.task, args.optimizer)
    write_json(args.out, record)
    chosen = " ".join(f"{axis}={value:g}" for axis, value in record["selected"].items())
    print(
        f"{args.task}/{args.optimizer}: {chosen} "
        f"({args.metric} {record['score']:.4g} over seeds {record['seeds']})"
    )
    return 0


def _sensitivity(args: argparse.Namespace) -> int:
    # here, not at the top: it loads matplotlib, pandas, seaborn
    from amsgrad_repro.tuning.figure import sensitivity_figure

    # here, not at the top: it loads pandas
    from amsgrad_repro.tuning.select import load_grid, sensitivity

    grid = load_grid(args.runs, args.metric)
    table = sensitivity(grid)
    write_csv(args.grid_out, grid)
    write_csv(args.sensitivity_out, table)
    sensitivity_figure(args.task, grid, args.settings, args.epochs, args.figure)
    print(table.groupby("optimizer")["value"].mean().to_string())
    return 0
