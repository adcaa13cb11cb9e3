"""CLI commands of the analysis stage: ``analyse`` (tables, claims, summary), and the
tuning stage's ``tune-select`` (pick α, β2 on the validation split) and ``sensitivity``
(robustness table and figure)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from amsgrad_repro.cli import json_arg

    parser = subparsers.add_parser("analyse", help="tables, paired comparisons and claims")
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="run.json files")
    parser.add_argument("--aggregates", nargs="*", type=Path, default=[])
    parser.add_argument(
        "--sensitivity", nargs="*", type=Path, default=[], help="tuning sensitivity.csv files"
    )
    parser.add_argument(
        "--grids", nargs="*", type=Path, default=[], help="grid tables (results/grids/*/table.csv)"
    )
    parser.add_argument("--claims", type=Path, required=True)
    parser.add_argument("--settings", type=json_arg, default={}, help="the resolved configuration")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.set_defaults(func=_analyse)
    _register_tuning(subparsers, json_arg)


def _register_tuning(subparsers: argparse._SubParsersAction, json_arg) -> None:
    select = subparsers.add_parser(
        "tune-select", help="select α and β2 of one task × optimizer on the validation split"
    )
    select.add_argument("--task", required=True)
    select.add_argument("--optimizer", required=True)
    select.add_argument("--settings", type=json_arg, required=True, help="the task's JSON")
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


def _analyse(args: argparse.Namespace) -> int:
    from amsgrad_repro.analysis.tables import analyse

    claims = analyse(
        args.runs,
        args.aggregates,
        args.claims,
        args.settings,
        args.out_dir,
        args.sensitivity,
        args.grids,
    )
    print((args.out_dir / "summary.txt").read_text())
    counts = claims["verdict"].value_counts().to_dict()
    print("verdicts:", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 0


def _tune_select(args: argparse.Namespace) -> int:
    from amsgrad_repro.analysis.tuning import load_grid, selection_record
    from amsgrad_repro.io import write_json

    grid = load_grid(args.runs, args.metric)
    record = selection_record(grid, args.task, args.optimizer, args.settings)
    write_json(args.out, record)
    chosen = record["selected"]
    print(
        f"{args.task}/{args.optimizer}: α={chosen['lr']:g} β2={chosen['beta2']:g} "
        f"({args.metric} {record['score']:.4g} over seeds {record['seeds']})"
    )
    return 0


def _sensitivity(args: argparse.Namespace) -> int:
    from amsgrad_repro.analysis.sensitivity_figure import sensitivity_figure
    from amsgrad_repro.analysis.tuning import load_grid, sensitivity
    from amsgrad_repro.io import write_csv

    grid = load_grid(args.runs, args.metric)
    table = sensitivity(grid)
    write_csv(args.grid_out, grid)
    write_csv(args.sensitivity_out, table)
    sensitivity_figure(args.task, grid, args.settings, args.epochs, args.figure)
    print(table.groupby("optimizer")["value"].mean().to_string())
    return 0
