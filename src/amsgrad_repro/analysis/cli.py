"""CLI command of the analysis stage: ``analyse`` (tables, claims, summary)."""

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
