"""Per-seed final values, and the tables built from them: finals with intervals, paired
comparisons between optimizers, and time-to-target.

Every seed of every optimizer shares initialisation and data order with the same seed of
the other optimizers, so differences are taken seed by seed (paired), which removes the
seed-to-seed variation that both optimizers share.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from amsgrad_repro.stats import bootstrap_summary

HIGHER_IS_BETTER = ("accuracy",)


def lower_is_better(metric: str) -> bool:
    return not any(word in metric for word in HIGHER_IS_BETTER)


def load_finals(run_files: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run and final metric: task, optimizer, seed, status, metric, value.
    A diverged run's metrics are NaN, so it counts as diverged, not as a number."""
    rows = []
    for path in map(Path, run_files):
        info = json.loads(path.read_text())
        diverged = info.get("status") != "completed"
        for metric, value in (info.get("final") or {}).items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            rows.append(
                {
                    "task": info["task"],
                    "optimizer": info["optimizer"],
                    "seed": int(info["seed"]),
                    "status": info.get("status", "completed"),
                    "metric": metric,
                    "value": np.nan if diverged else float(value),
                }
            )
    return pd.DataFrame(rows, columns=["task", "optimizer", "seed", "status", "metric", "value"])


def finals_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and 95% bootstrap interval of each final metric per task × optimizer."""
    rows = []
    for (task, optimizer, metric), group in finals.groupby(["task", "optimizer", "metric"]):
        summary = bootstrap_summary(group["value"].to_numpy()[None, :])
        rows.append(
            {
                "task": task,
                "optimizer": optimizer,
                "metric": metric,
                "mean": summary.mean[0],
                "median": summary.median[0],
                "lo": summary.lo[0],
                "hi": summary.hi[0],
                "n": int(summary.n[0]),
                "diverged": int((group["status"] == "diverged").sum()),
            }
        )
    return pd.DataFrame(rows)


def paired_differences(
    finals: pd.DataFrame, task: str, metric: str, candidate: str, baseline: str
) -> np.ndarray:
    """Per-seed candidate − baseline for seeds where both have a finite value."""
    subset = finals[(finals["task"] == task) & (finals["metric"] == metric)]
    wide = subset.pivot_table(index="seed", columns="optimizer", values="value", dropna=False)
    if candidate not in wide or baseline not in wide:
        return np.array([])
    diff = (wide[candidate] - wide[baseline]).to_numpy(dtype=float)
    return diff[np.isfinite(diff)]


def paired_table(finals: pd.DataFrame, pairs: list[list[str]]) -> pd.DataFrame:
    """For each task, metric and (candidate, baseline) pair: mean paired difference, its
    bootstrap interval, and the probability of improvement (share of seeds where the
    candidate is better)."""
    rows = []
    for task in sorted(finals["task"].unique()):
        for metric in sorted(finals.loc[finals["task"] == task, "metric"].unique()):
            for candidate, baseline in pairs:
                diff = paired_differences(finals, task, metric, candidate, baseline)
                if diff.size == 0:
                    continue
                summary = bootstrap_summary(diff[None, :])
                better = diff < 0 if lower_is_better(metric) else diff > 0
                rows.append(
                    {
                        "task": task,
                        "metric": metric,
                        "candidate": candidate,
                        "baseline": baseline,
                        "mean_diff": summary.mean[0],
                        "lo": summary.lo[0],
                        "hi": summary.hi[0],
                        "n": int(diff.size),
                        "p_improvement": float(better.mean()),
                        "lower_is_better": lower_is_better(metric),
                    }
                )
    return pd.DataFrame(rows)


def time_to_target(aggregate: pd.DataFrame, task: str, targets: dict[str, float]) -> pd.DataFrame:
    """First step where the seed-mean curve reaches the target (≤ for losses, ≥ for
    accuracies); a miss is counted as the full budget and flagged."""
    rows = []
    for metric, target in targets.items():
        curves = aggregate[aggregate["metric"] == metric]
        for optimizer, curve in curves.groupby("optimizer"):
            curve = curve.sort_values("step")
            reached = (
                curve["mean"] <= target if lower_is_better(metric) else curve["mean"] >= target
            )
            budget = int(curve["step"].max())
            hit = curve.loc[reached, "step"]
            rows.append(
                {
                    "task": task,
                    "optimizer": optimizer,
                    "metric": metric,
                    "target": target,
                    "step": int(hit.iloc[0]) if len(hit) else budget,
                    "reached": bool(len(hit)),
                    "budget": budget,
                }
            )
    return pd.DataFrame(rows)
