"""CLI command of the data stage: ``prepare-data``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amsgrad_repro.cli import json_arg
from amsgrad_repro.data.dvc import DvcError
from amsgrad_repro.data.formats import CorruptData
from amsgrad_repro.data.prepare import prepare
from amsgrad_repro.data.sources import DatasetUnavailable


def register(subparsers: argparse._SubParsersAction) -> None:

    prepare = subparsers.add_parser(
        "prepare-data", help="fetch (through DVC), verify and convert one dataset"
    )
    prepare.add_argument("--dataset", required=True)
    prepare.add_argument("--settings", type=json_arg, required=True)
    prepare.add_argument(
        "--out", type=Path, required=True, help="the cache file, data/cache/<dataset>.pt"
    )
    prepare.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    prepare.set_defaults(func=_prepare)


def _prepare(args: argparse.Namespace) -> int:

    try:
        prepare(args.root.resolve(), args.dataset, args.settings, args.out)
    except (DatasetUnavailable, CorruptData, DvcError) as error:
        print(f"amsgrad-repro: {error}", file=sys.stderr)
        return 1
    return 0
