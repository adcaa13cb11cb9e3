"""The grid stage with and without continuation, in one run (issue 21).

For every grid of a preset: the wall time, how many cells ran past ``steps``, how many are
still unsettled, per problem; on beta_map the smallest β2 from which each optimizer
converges at β1 = 0.9 on the online problem; then every grid claim's verdict, estimate and
interval. First with the grids as configured (cells still moving continue up to
``max_steps``), then with ``max_steps = steps`` (no continuation), the baseline.

    .venv/bin/python benchmarks/grid_stage.py                 # quick: about 14 minutes
    .venv/bin/python benchmarks/grid_stage.py --scale smoke   # seconds
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from amsgrad_repro.analysis.claims import evaluate_claims
from amsgrad_repro.analysis.claims_spec import load_claims_file
from amsgrad_repro.analysis.grid_claims import GridData
from amsgrad_repro.config import load
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.synthetic.grid_spec import grid_spec
from amsgrad_repro.synthetic.grids import cell_summary, run_grid

REPO = Path(__file__).resolve().parents[1]
Mode = Callable[[dict[str, Any]], dict[str, Any]]  # a grid's declaration, as run
MODES: dict[str, Mode] = {
    "continued": lambda declaration: declaration,
    "baseline (max_steps = steps)": lambda declaration: {
        **declaration,
        "max_steps": declaration["steps"],
    },
}


def run_stage(settings: dict[str, Any], mode: Mode, threads: int) -> dict[str, GridData]:
    """Every enabled grid under ``mode``, printing what each did; their data for claims."""
    specs = catalogue(settings.get("plugins"))
    grids: dict[str, GridData] = {}
    total = 0.0
    for name, declaration in settings["grids"].items():
        if not declaration.get("enabled", True):
            continue
        grid = grid_spec(name, mode(dict(declaration)), settings["seeds"], specs)
        started = time.perf_counter()
        result = run_grid(grid, specs, threads=threads)
        wall = time.perf_counter() - started
        total += wall
        cells = cell_summary(result.table, grid)
        print(f"  {name}: {wall:.0f} s, {len(cells)} cells, steps {grid.steps:.0e}")
        for problem, rows in cells.groupby("problem"):
            past = int((rows["steps_run"] > grid.steps).sum())
            states = rows["state"].value_counts().to_dict()
            longest = int(rows["steps_run"].max())
            print(f"    {problem}: {past} ran past steps (longest {longest:.0e}), states {states}")
        if name == "beta_map":
            print_boundary(cells)
        grids[name] = GridData(grid, result.table)
    print(f"  grid stage: {total:.0f} s")
    return grids


def print_boundary(cells: pd.DataFrame) -> None:
    """The smallest β2 whose cell converged, per optimizer, at β1 = 0.9 on online."""
    online = cells[(cells["problem"] == "online") & (cells["beta1"].round(6) == 0.9)]
    for optimizer, rows in online.groupby("optimizer"):
        converged = rows.loc[rows["state"] == "converged", "beta2"]
        smallest = f"{converged.min():.6g}" if len(converged) else "none"
        unsettled = int((rows["state"] == "unsettled").sum())
        print(
            f"    online, beta1 = 0.9, {optimizer}: smallest converging beta2 {smallest}"
            f" ({unsettled} of {len(rows)} cells unsettled)"
        )


def print_claims(grids: dict[str, GridData]) -> None:
    """Every grid claim of workflow/claims.yaml on these grids' tables."""
    claims = [
        claim
        for claim in load_claims_file(REPO / "workflow" / "claims.yaml")
        if claim["task"] in grids
    ]
    for _, row in evaluate_claims(claims, pd.DataFrame(), grids=grids).iterrows():
        print(
            f"  {row['id']}: {row['verdict']}, {row['estimate']:.6g} "
            f"[{row['lo']:.6g}, {row['hi']:.6g}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = load(REPO / "config.yaml", {"scale": args.scale})
    for label, mode in MODES.items():
        print(f"{label}:")
        grids = run_stage(settings, mode, args.threads)
        print_claims(grids)


if __name__ == "__main__":
    main()
