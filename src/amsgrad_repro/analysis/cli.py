"""CLI commands of the analysis stage: ``analyse`` (tables, claims, summary) and
``cross-task`` (every optimizer against the baseline on every task: table and heatmap)."""

from __future__ import annotations

import argparse
from pathlib import Path

from amsgrad_repro.cli import json_arg


def register(subparsers: argparse._SubParsersAction) -> None:

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

    cross = subparsers.add_parser(
        "cross-task", help="every optimizer against the baseline on every task: table, heatmap"
    )
    cross.add_argument("--runs", nargs="+", type=Path, required=True, help="run.json files")
    cross.add_argument("--claims", type=Path, required=True)
    cross.add_argument("--settings", type=json_arg, default={}, help="the resolved configuration")
    cross.add_argument("--table", type=Path, required=True, help="the CSV to write")
    cross.add_argument(
        "--out", nargs="+", type=Path, required=True, help="the figure's files (png, pdf, svg)"
    )
    cross.set_defaults(func=_cross_task)


def _analyse(args: argparse.Namespace) -> int:
    # here, not at the top: it loads numba, pandas
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


def _cross_task(args: argparse.Namespace) -> int:
    # here, not at the top: it loads pandas
    from amsgrad_repro.analysis.cross_task import configured_min_seeds, write_cross_task_table

    # here, not at the top: it loads matplotlib, seaborn
    from amsgrad_repro.analysis.cross_task_figure import cross_task_figure

    frame = write_cross_task_table(args.runs, args.claims, args.settings, args.table)
    scale, min_seeds = args.settings.get("scale", "?"), configured_min_seeds(args.settings)
    cross_task_figure(frame, args.out, scale, min_seeds)
    counts = frame["verdict"].value_counts().to_dict()
    print(f"{len(frame)} cells:", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 0
