"""The cross-task summary: every optimizer against a task's baseline, on every task that ran.

One row per task × optimizer (``results/tables/cross_task.csv``): the paired effect
candidate − baseline seed by seed on the task's headline metric, its 95% Student-t
interval and the three-way verdict of ``analysis.verdicts.compare`` against the margin.
The headline of a task is its first ``compare`` claim in ``workflow/claims.yaml``: its
metric, statistic, baseline and margin; every optimizer the task ran is judged like that
claim's candidate, so a plug-in appears like a built-in and a new task (a deep model)
needs only claims.yaml entries. A task that ran without a ``compare`` claim still gets
its column, on the kind's default metric against Adam, with the verdict "no margin
declared": an effect is shown, nothing is decided without a declared margin. Two
optimizers that both ran but share no seed of the same length read "no matched seeds".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.analysis.claims import margin_size
from amsgrad_repro.analysis.claims_spec import load_claims_file
from amsgrad_repro.analysis.verdicts import DEFAULT_MIN_SEEDS, NOT_RUN, compare
from amsgrad_repro.io import write_csv
from amsgrad_repro.summaries.finals import FINAL, load_finals, lower_is_better, paired_differences

NO_MARGIN = "no margin declared"
# Both ran, but on no seed after the same number of steps (a plug-in's shorter generic
# run of a synthetic problem): nothing to pair.
NO_PAIRS = "no matched seeds"
DEFAULT_BASELINE = "adam"
# The metric of a task without a compare claim, by kind (the synthetic problems: the
# iterate, whose distance to x* = -1 is their question).
DEFAULT_METRICS = {"synthetic": "x"}
DEFAULT_METRIC = "test_loss"
COLUMNS = [
    "task",
    "optimizer",
    "baseline",
    "statistic",
    "metric",
    "lower_is_better",
    "margin",
    "estimate",
    "lo",
    "hi",
    "n_seeds",
    "verdict",
    "claim",
]


@dataclass(frozen=True)
class Headline:
    """What a task's column compares: ``rule`` holds the baseline and the margin fields
    (none for a task without a compare claim); ``claim`` is its id ("" then)."""

    metric: str
    statistic: str
    rule: Mapping[str, Any]
    claim: str

    @property
    def baseline(self) -> str:
        return self.rule["baseline"]

    @property
    def declared(self) -> bool:
        return bool(self.claim)


def headlines(
    claims: Sequence[Mapping[str, Any]], tasks: Sequence[str], kinds: Mapping[str, str]
) -> dict[str, Headline]:
    """Each task's headline: its first ``compare`` claim, else the kind's default metric
    against Adam with no margin."""
    found: dict[str, Headline] = {}
    for claim in claims:
        rule = claim["rule"]
        if rule["type"] == "compare" and claim["task"] in tasks and claim["task"] not in found:
            statistic = rule.get("statistic", FINAL)
            found[claim["task"]] = Headline(claim["metric"], statistic, rule, claim["id"])
    for task in tasks:
        if task not in found:
            metric = DEFAULT_METRICS.get(kinds.get(task, ""), DEFAULT_METRIC)
            found[task] = Headline(metric, FINAL, {"baseline": DEFAULT_BASELINE}, "")
    return {task: found[task] for task in tasks}


def cross_task_table(
    finals: pd.DataFrame,
    claims: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    min_seeds: int = DEFAULT_MIN_SEEDS,
) -> pd.DataFrame:
    """One row per task that ran × each other optimizer it ran (tasks in the
    configuration's order, optimizers in each task's)."""
    configured = settings.get("tasks", {})
    ran = set(finals["task"])
    tasks = [t for t in configured if t in ran] + sorted(ran - set(configured))
    kinds = {t: (configured.get(t) or {}).get("kind", "") for t in tasks}
    rows = []
    for task, headline in headlines(claims, tasks, kinds).items():
        present = set(finals.loc[finals["task"] == task, "optimizer"])
        order = [o for o in (configured.get(task) or {}).get("optimizers", []) if o in present]
        order += sorted(present - set(order))
        for optimizer in order:
            if optimizer != headline.baseline:
                rows.append(_cell(finals, task, optimizer, headline, min_seeds))
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell(
    finals: pd.DataFrame, task: str, optimizer: str, headline: Headline, min_seeds: int
) -> dict[str, Any]:
    """One optimizer against the task's baseline on the headline metric."""
    rows = finals[
        (finals["task"] == task)
        & (finals["metric"] == headline.metric)
        & (finals["statistic"] == headline.statistic)
    ]
    diff = paired_differences(
        finals, task, headline.metric, optimizer, headline.baseline, headline.statistic
    )
    lower = lower_is_better(headline.metric)
    margin = margin_size(headline.rule, rows) if headline.declared else float("nan")
    names = (optimizer, headline.baseline)
    verdict = compare(diff, margin if headline.declared else 0.0, lower, names, min_seeds)
    outcome = verdict.verdict
    if outcome == NOT_RUN and {optimizer, headline.baseline} <= set(rows["optimizer"]):
        outcome = NO_PAIRS
    elif not headline.declared and outcome != NOT_RUN:
        outcome = NO_MARGIN
    return {
        "task": task,
        "optimizer": optimizer,
        "baseline": headline.baseline,
        "statistic": headline.statistic,
        "metric": headline.metric,
        "lower_is_better": lower,
        "margin": margin,
        "estimate": verdict.estimate,
        "lo": verdict.lo,
        "hi": verdict.hi,
        "n_seeds": verdict.n,
        "verdict": outcome,
        "claim": headline.claim,
    }


def configured_min_seeds(settings: Mapping[str, Any]) -> int:
    """``analysis.min_seeds`` of the resolved configuration (the claims' own rule)."""
    return int((settings.get("analysis") or {}).get("min_seeds", DEFAULT_MIN_SEEDS))


def write_cross_task_table(
    run_files: Sequence[Path], claims_path: Path, settings: Mapping[str, Any], table: Path
) -> pd.DataFrame:
    """The cross-task table of these runs, written atomically (the heatmap draws it:
    ``analysis.cross_task_figure``)."""
    finals = load_finals(run_files)
    claims = load_claims_file(claims_path)
    frame = cross_task_table(finals, claims, settings, configured_min_seeds(settings))
    write_csv(table, frame)
    return frame


def improvement_in_margins(frame: pd.DataFrame) -> np.ndarray:
    """Each row's effect in units of its margin, signed so that positive is better than
    the baseline (NaN without a margin): the heatmap's colour."""
    sign = np.where(frame["lower_is_better"].astype(bool), -1.0, 1.0)
    margin = frame["margin"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = sign * frame["estimate"].to_numpy(dtype=float) / margin
    return np.where(np.isfinite(value), value, np.nan)
