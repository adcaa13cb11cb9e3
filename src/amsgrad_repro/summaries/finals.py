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
from types import SimpleNamespace

import numpy as np
import pandas as pd

from amsgrad_repro.run_states import CONVERGED, FAILED, STATES, UNSETTLED
from amsgrad_repro.stats import interval_summary

HIGHER_IS_BETTER = ("accuracy",)


def lower_is_better(metric: str) -> bool:
    return not any(word in metric for word in HIGHER_IS_BETTER)


FINAL, BEST = "final", "best"
# Metrics whose best value over a run means something (a loss, an accuracy); the synthetic
# problems' x and R_t/t are judged at the end only.
BEST_WORDS = ("loss", "accuracy", "recon", "kl")
# ``state``: a synthetic run's converged / failed / unsettled (``synthetic.settle``), empty
# for the training tasks. ``planned_steps``: the task's ``steps`` (a synthetic run may stop
# short of it on the generic path, or go past it while still moving: ``max_steps``).
FINALS_COLUMNS = [
    "task", "optimizer", "seed", "steps", "planned_steps", "status", "state", "statistic",
    "metric", "value",
]  # fmt: skip


def best_values(metrics_path: Path) -> dict[str, float]:
    """The best logged value of each loss/accuracy column of one run's ``metrics.csv``
    (lowest loss, highest accuracy), over its finite rows."""
    if not metrics_path.exists():
        return {}
    frame = pd.read_csv(metrics_path)
    best = {}
    for column in frame.columns:
        if not any(word in column for word in BEST_WORDS):
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        values = values[np.isfinite(values)]
        if len(values):
            best[column] = float(values.min() if lower_is_better(column) else values.max())
    return best


def _numeric(final: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in (final or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def load_finals(run_files: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run, statistic (``final``: the last logged value, from ``run.json``;
    ``best``: the best logged value, from the run's ``metrics.csv``) and metric.
    A diverged run's values are NaN, so it counts as diverged, not as a number."""
    rows = []
    for path in map(Path, run_files):
        info = json.loads(path.read_text())
        status = info.get("status", "completed")
        diverged = status != "completed"
        base = {
            "task": info["task"],
            "optimizer": info["optimizer"],
            "seed": int(info["seed"]),
            "steps": float(info.get("steps", np.nan)),
            "planned_steps": float((info.get("settings") or {}).get("steps", np.nan)),
            "state": info.get("state"),
        }
        for statistic, values in (
            (FINAL, _numeric(info.get("final"))),
            (BEST, best_values(path.parent / "metrics.csv")),
        ):
            for metric, value in values.items():
                if metric == "lr":
                    continue
                rows.append(
                    {
                        **base,
                        "status": status,
                        "statistic": statistic,
                        "metric": metric,
                        "value": np.nan if diverged else value,
                    }
                )
    return pd.DataFrame(rows, columns=FINALS_COLUMNS)


def finals_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and 95% Student-t interval of each final and best metric per
    task × optimizer, with the number of finite and of diverged seeds, the seeds of each
    state (``state``: a synthetic run converged, failed or unsettled, still moving at its
    last step, ``synthetic.settle``), the unsettled ones counted apart, and the steps its
    runs took (a plug-in on a 1-D problem may run fewer: ``generic_steps``)."""
    rows = []
    keys = ["task", "optimizer", "statistic", "metric"]
    for key, group in finals.groupby(keys, sort=True):
        summary = interval_summary(group["value"].to_numpy()[None, :])
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "mean": summary.mean[0],
                "median": summary.median[0],
                "lo": summary.lo[0],
                "hi": summary.hi[0],
                "n": int(summary.n[0]),
                "diverged": int((group["status"] == "diverged").sum()),
                "state": state_counts(group),
                "unsettled": unsettled_count(group),
                "steps": _steps_run(group),
            }
        )
    columns = [*keys, "mean", "median", "lo", "hi", "n", "diverged", "state", "unsettled", "steps"]
    return pd.DataFrame(rows, columns=columns)


def state_counts(rows: pd.DataFrame) -> str:
    """The seeds of each state, ``converged 7, unsettled 3`` (STATES order); "" without."""
    if "state" not in rows:
        return ""
    counts = rows["state"].value_counts()
    return ", ".join(f"{s} {int(counts[s])}" for s in STATES if s in counts)


def unsettled_count(rows: pd.DataFrame) -> int:
    """How many of ``rows`` are runs still moving at their last step (0 without a state)."""
    return int((rows["state"] == UNSETTLED).sum()) if "state" in rows else 0


def settled_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` without the unsettled runs: a run still moving is evidence for no side."""
    return rows[rows["state"] != UNSETTLED] if "state" in rows else rows


def _steps_run(group: pd.DataFrame) -> float:
    """The steps the completed runs of a group took (the most, should they differ)."""
    if "steps" not in group:
        return float("nan")
    steps = group.loc[group["status"] == "completed", "steps"].dropna()
    return float(steps.max()) if len(steps) else float("nan")


def paired_differences(
    finals: pd.DataFrame,
    task: str,
    metric: str,
    candidate: str,
    baseline: str,
    statistic: str = FINAL,
) -> np.ndarray:
    """Per-seed candidate − baseline for seeds where both have a finite value after the
    same number of steps (a final x after 10^6 steps is no match for one after 10^7) and
    neither is still moving (an unsettled synthetic run, ``synthetic.settle``). Two
    settled synthetic runs that both ran at least their planned steps pair whatever their
    lengths: each went on (``max_steps``) until the settle rule found it where it stays."""
    subset = settled_seeds(
        finals[
            (finals["task"] == task)
            & (finals["metric"] == metric)
            & (finals["statistic"] == statistic)
        ]
    )
    wide = subset.pivot_table(index="seed", columns="optimizer", values="value", dropna=False)
    if candidate not in wide or baseline not in wide:
        return np.array([])
    diff = (wide[candidate] - wide[baseline]).to_numpy(dtype=float)
    keep = np.isfinite(diff)
    if "steps" in subset and subset["steps"].notna().any():
        keep &= _same_budget(subset, candidate, baseline)
    return diff[keep]


def _same_budget(rows: pd.DataFrame, candidate: str, baseline: str) -> np.ndarray:
    """Per seed: both runs took the same steps, or both settled having run their plan
    (rows without states or planned steps, the training tasks', need the same steps)."""
    steps = rows.pivot_table(index="seed", columns="optimizer", values="steps", dropna=False)
    same = (steps[candidate] == steps[baseline]).to_numpy()
    if "state" not in rows or "planned_steps" not in rows:
        return same
    wide = rows.assign(
        settled=rows["state"].isin((CONVERGED, FAILED))
        & (rows["steps"] >= rows["planned_steps"].fillna(np.inf))
    )
    settled = wide.pivot_table(
        index="seed", columns="optimizer", values="settled", aggfunc="all", dropna=False
    )
    both = (settled[candidate].fillna(False) & settled[baseline].fillna(False)).to_numpy(bool)
    return same | both


def probability_of_improvement(diff: np.ndarray, lower_better: bool) -> float:
    """Share of seeds on which the candidate beats the baseline; a tie counts one half."""
    better = diff < 0 if lower_better else diff > 0
    return float(better.mean() + 0.5 * (diff == 0).mean())


PAIRED_COLUMNS = [
    "task",
    "statistic",
    "metric",
    "candidate",
    "baseline",
    "mean_diff",
    "lo",
    "hi",
    "n",
    "unsettled",
    "p_improvement",
    "lower_is_better",
]


def paired_table(finals: pd.DataFrame, pairs: list[list[str]]) -> pd.DataFrame:
    """For each task, statistic, metric and (candidate, baseline) pair: the mean paired
    difference, its Student-t interval, and the probability of improvement over the
    settled seeds, with the seeds left out because a run was still moving (a row, with no
    estimate, even when that leaves none)."""
    rows = []
    combos = (
        finals[["task", "statistic", "metric"]]
        .drop_duplicates()
        .sort_values(["task", "statistic", "metric"])
    )
    for task, statistic, metric in combos.itertuples(index=False):
        for candidate, baseline in pairs:
            diff = paired_differences(finals, task, metric, candidate, baseline, statistic)
            moving = _unsettled_pairs(finals, task, metric, (candidate, baseline), statistic)
            if diff.size == 0 and not moving:
                continue
            summary = interval_summary(diff[None, :]) if diff.size else _NO_SUMMARY
            rows.append(
                {
                    "task": task,
                    "statistic": statistic,
                    "metric": metric,
                    "candidate": candidate,
                    "baseline": baseline,
                    "mean_diff": summary.mean[0],
                    "lo": summary.lo[0],
                    "hi": summary.hi[0],
                    "n": int(diff.size),
                    "unsettled": moving,
                    "p_improvement": (
                        probability_of_improvement(diff, lower_is_better(metric))
                        if diff.size
                        else float("nan")
                    ),
                    "lower_is_better": lower_is_better(metric),
                }
            )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


# A pair with no settled seed has no estimate; its row still says how many were moving.
_NO_SUMMARY = SimpleNamespace(mean=[np.nan], lo=[np.nan], hi=[np.nan])


def _unsettled_pairs(
    finals: pd.DataFrame, task: str, metric: str, pair: tuple[str, str], statistic: str
) -> int:
    """The seeds a pair leaves out because either run was still moving (an unsettled
    synthetic run): the paired table counts them rather than dropping them unseen."""
    rows = finals[
        (finals["task"] == task)
        & (finals["metric"] == metric)
        & (finals["statistic"] == statistic)
        & finals["optimizer"].isin(pair)
    ]
    if "state" not in rows:
        return 0
    return int(rows.loc[rows["state"] == UNSETTLED, "seed"].nunique())


TTT_COLUMNS = ["task", "optimizer", "metric", "target", "stays_from_step", "reached", "budget"]


def time_to_target(aggregate: pd.DataFrame, task: str, targets: dict[str, float]) -> pd.DataFrame:
    """The first logged step from which the seed-mean curve stays at or past the target
    (≤ for losses, ≥ for accuracies) until the end of the run; a brief early crossing does
    not count. A curve that ends on the wrong side is a miss, counted as the full budget
    and flagged."""
    rows = []
    for metric, target in targets.items():
        curves = aggregate[aggregate["metric"] == metric]
        for optimizer, curve in curves.groupby("optimizer"):
            curve = curve.sort_values("step")
            past = (
                curve["mean"] <= target if lower_is_better(metric) else curve["mean"] >= target
            ).to_numpy()
            steps = curve["step"].to_numpy()
            budget = int(steps.max())
            stays = bool(len(past)) and bool(past[-1])
            first = int(steps[_start_of_final_run(past)]) if stays else budget
            rows.append(
                {
                    "task": task,
                    "optimizer": optimizer,
                    "metric": metric,
                    "target": target,
                    "stays_from_step": first,
                    "reached": stays,
                    "budget": budget,
                }
            )
    return pd.DataFrame(rows, columns=TTT_COLUMNS)


def _start_of_final_run(flags: np.ndarray) -> int:
    """Index where the final run of True values in ``flags`` (whose last value is True)
    begins."""
    misses = np.flatnonzero(~flags)
    return int(misses[-1]) + 1 if misses.size else 0
