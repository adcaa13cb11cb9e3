"""CLI commands of the grid stage: ``grid`` (one grid, one call of the compiled kernel)
and ``grid-figure`` (its figure and per-cell summary)."""

from __future__ import annotations

import argparse
from pathlib import Path

from amsgrad_repro.cli import json_arg
from amsgrad_repro.io import write_csv
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.synthetic.grid_spec import grid_spec


def register(subparsers: argparse._SubParsersAction) -> None:

    run = subparsers.add_parser(
        "grid", help="run every cell x problem x optimizer x seed of one grid in one job"
    )
    _common(run, json_arg)
    run.add_argument("--out-dir", type=Path, required=True, help="results/grids/<name>")
    run.add_argument("--threads", type=int, default=0, help="kernel threads (0: numba's)")
    run.set_defaults(func=_run)

    fig = subparsers.add_parser("grid-figure", help="a grid's figure and per-cell summary")
    _common(fig, json_arg)
    fig.add_argument("--table", type=Path, required=True, help="the grid's table.csv")
    fig.add_argument("--cells-out", type=Path, required=True, help="per-cell summary CSV")
    fig.add_argument("--out", nargs="+", required=True, help="PNG/PDF paths")
    fig.set_defaults(func=_figure)


def _common(parser: argparse.ArgumentParser, json_arg) -> None:  # noqa: ANN001
    parser.add_argument("--name", required=True, help="the grid's name under grids:")
    parser.add_argument("--settings", type=json_arg, required=True, help="its declaration")
    parser.add_argument(
        "--seeds", type=int, nargs="+", required=True, help="the configuration's seeds"
    )
    parser.add_argument("--plugins", type=json_arg, default={}, help="plug-in declarations")


def _spec(args: argparse.Namespace):  # noqa: ANN202

    specs = catalogue(args.plugins)
    return grid_spec(args.name, args.settings, args.seeds, specs), specs


def _run(args: argparse.Namespace) -> int:
    # here, not at the top: it loads numba, pandas
    from amsgrad_repro.synthetic.grids import describe_timing, run_grid, write_grid

    grid, specs = _spec(args)
    result = run_grid(grid, specs, threads=args.threads or None)
    write_grid(args.out_dir, grid, result, args.settings, specs)
    print(f"grid {grid.name}: {len(grid.cells())} cells; {describe_timing(result.timing)}")
    return 0


def _figure(args: argparse.Namespace) -> int:
    # here, not at the top: it loads matplotlib, numba, pandas, seaborn
    from amsgrad_repro.synthetic.grid_figures import grid_figure

    # here, not at the top: it loads numba, pandas
    from amsgrad_repro.synthetic.grids import cell_summary, read_table

    grid, _ = _spec(args)
    table = read_table(args.table)
    write_csv(args.cells_out, cell_summary(table, grid))
    grid_figure(grid, table, args.out)
    return 0
