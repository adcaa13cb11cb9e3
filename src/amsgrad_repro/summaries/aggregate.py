"""Collect every seed's ``metrics.csv`` of a task into one tidy table of curves.

Output (``results/aggregates/<task>.csv``), one row per optimizer × step × metric:
``optimizer, step, metric, mean, median, lo, hi, n`` with a 95% interval of the mean over
seeds. A diverged run contributes its log points before the one that stopped it: a run
stopped by a non-finite loss and one stopped by the divergence rule (a finite loss far
above its initial loss, ``train.divergence``) are treated alike, so neither a NaN nor a
loss of 10^16 enters a mean curve.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from amsgrad_repro.io import write_csv
from amsgrad_repro.stats import interval_summary

NON_METRIC_COLUMNS = ("step", "epoch", "wall_time", "lr")


def run_identity(metrics_path: Path) -> tuple[str, str, int]:
    """``.../runs/<task>/<optimizer>/<seed>/metrics.csv`` → (task, optimizer, seed)."""
    seed_dir = metrics_path.parent
    return seed_dir.parent.parent.name, seed_dir.parent.name, int(seed_dir.name)


def diverged_at(metrics_path: Path) -> int | None:
    """The step at which the run beside ``metrics.csv`` was stopped as diverged (from its
    ``run.json``), or None for a completed run or one without a record."""
    record = metrics_path.with_name("run.json")
    if not record.exists():
        return None
    info = json.loads(record.read_text())
    if info.get("status") != "diverged":
        return None
    step = info.get("diverged_at_step")
    return int(step) if step is not None else None


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All runs' metrics, long format: optimizer, seed, step, metric, value; the values a
    diverged run logged from its diverging step on are NaN."""
    frames = []
    for path in map(Path, paths):
        _, optimizer, seed = run_identity(path)
        frame = pd.read_csv(path)
        metrics = [c for c in frame.columns if c not in NON_METRIC_COLUMNS]
        stopped = diverged_at(path)
        if stopped is not None:
            frame.loc[frame["step"] >= stopped, metrics] = float("nan")
        long = frame.melt(id_vars=["step"], value_vars=metrics, var_name="metric")
        long["optimizer"] = optimizer
        long["seed"] = seed
        frames.append(long)
    if not frames:
        raise ValueError("no runs to aggregate")
    return pd.concat(frames, ignore_index=True)


def aggregate(long: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and Student-t interval over seeds for every optimizer, metric and step."""
    pieces = []
    for (optimizer, metric), group in long.groupby(["optimizer", "metric"], sort=True):
        table = group.pivot_table(index="step", columns="seed", values="value", dropna=False)
        summary = interval_summary(table.to_numpy(dtype=float))
        pieces.append(
            pd.DataFrame(
                {
                    "optimizer": optimizer,
                    "step": table.index.to_numpy(),
                    "metric": metric,
                    "mean": summary.mean,
                    "median": summary.median,
                    "lo": summary.lo,
                    "hi": summary.hi,
                    "n": summary.n.astype(int),
                }
            )
        )
    table = pd.concat(pieces, ignore_index=True)
    # Steps where no seed has a value (held-out metrics between evaluations) carry nothing.
    return table[table["n"] > 0].reset_index(drop=True)


def aggregate_files(paths: Iterable[str | Path], out: str | Path) -> pd.DataFrame:

    table = aggregate(load_runs(paths))
    write_csv(out, table)
    return table


def curve(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric's curves, sorted by optimizer and step, for plotting."""
    subset = table[table["metric"] == metric]
    return subset.sort_values(["optimizer", "step"]).reset_index(drop=True)
