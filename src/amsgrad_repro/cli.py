"""Command-line interface: ``amsgrad-repro <command>``. The Snakemake rules call it.

Each command lives in its own module exposing ``register(subparsers)``; the module sets
``func`` on its parser. Imports are lazy so a command pays only for what it uses (the
synthetic runs never import torch).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from amsgrad_repro import supervision
from amsgrad_repro.errors import ReportedError
from amsgrad_repro.settings_base import ConfigError

# Modules that contribute commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "amsgrad_repro.optimizers.cli",
    "amsgrad_repro.synthetic.cli",
    "amsgrad_repro.synthetic.grid_cli",
    "amsgrad_repro.data.cli",
    "amsgrad_repro.train.cli",
    "amsgrad_repro.tuning.cli",
    "amsgrad_repro.analysis.cli",
    "amsgrad_repro.share",
    "amsgrad_repro.report",
)


def json_arg(text: str) -> Any:
    """argparse type for the JSON settings the rules pass."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from error


def version() -> str:
    """The installed package's version (its metadata, from pyproject.toml)."""
    try:
        return metadata.version("amsgrad-repro")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed: run `make install`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amsgrad-repro",
        description="Reproduce 'On the Convergence of Adam and Beyond' (ICLR 2018).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. As the process's entry point (``argv`` None) it also ends with the
    Snakemake that started it and turns SIGTERM into an interruption
    (``amsgrad_repro.supervision``); Ctrl-C or SIGTERM print one line, not a traceback."""
    if argv is None:
        supervision.install_stop_handler()
        supervision.supervise()
    args = None
    try:
        args = build_parser().parse_args(argv)
        return _run(args)
    except BaseException as error:
        stop = supervision.interruption_in(error)
        if stop is None:
            raise
        if argv is None:
            supervision.ignore_further_interrupts()
        command = getattr(args, "command", None) or "(starting)"
        print(supervision.interrupted_line(command, args, stop), file=sys.stderr, flush=True)
        return supervision.exit_status(stop)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except ConfigError as error:
        print(f"amsgrad-repro: configuration error: {error}", file=sys.stderr)
        return 2
    except ReportedError as error:  # the message says what to do: no traceback
        print(f"amsgrad-repro {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
