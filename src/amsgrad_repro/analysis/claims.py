"""The paper's claims, each checked against the measurements with a written-down rule.

Decision rule (docs/claims.md): every claim is a statement about a measured effect; we take
the 95% Student-t interval of that effect's mean over seeds (``amsgrad_repro.stats``: its
coverage at 3–10 seeds is checked by simulation, a bootstrap's is not 95% there) and
compare it with the claimed side of a threshold:

* fewer finite seeds than ``analysis.min_seeds`` (default 5) → **too few seeds** (the
  estimate and interval are still reported, but decide nothing)
* the whole interval on the claimed side      → **reproduced**
* the whole interval on the opposite side     → **not reproduced**
* the interval contains the threshold         → **inconclusive**
* the task (or an optimizer it needs) not run → **not run**
* it ran, but every seed diverged             → **inconclusive** (diverged seeds are
  counted beside every verdict)
* on a synthetic task, a seed still moving at its last step (``synthetic.settle``:
  unsettled) counts neither way: it is left out of the samples (of a pair, when either
  run is), the effect says "k of n seeds unsettled at T steps", and a claim left without
  enough settled seeds is **inconclusive** (more steps are wanted), never "not
  reproduced"; with fewer than ``min_seeds`` seeds run at all it stays **too few seeds**

Two kinds of effect:

* ``threshold``: the mean over seeds of one optimizer's final (or, with
  ``statistic: best``, best logged) metric, against ``value``
  (e.g. Adam's final x on the online problem above 0.9).
* ``paired``: the mean over seeds of candidate − baseline of a final metric (same seed =
  same initialisation and data order), against the smallest difference that counts:
  ``margin + relative_margin × |baseline mean|`` on the claimed side of 0 (both default
  0), so that a consistent but negligible difference is "not reproduced", not a win.

And one kind of open question, not a claim of the paper:

* ``compare``: the same paired candidate − baseline, judged three ways against a margin
  (``margin + relative_margin × |baseline mean|``, declared with the claim):
  "<candidate> better" or "<baseline> better" when the whole interval lies beyond the
  margin on that optimizer's side, **no practical difference** when it lies strictly
  inside ±margin (an equivalence test, ``verdicts.compare``), else inconclusive; which
  side is better follows the metric (an accuracy higher, anything else lower).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.analysis import grid_claims
from amsgrad_repro.analysis.verdicts import (
    DEFAULT_MIN_SEEDS,
    EVALUATORS,
    INCONCLUSIVE,
    NOT_RUN,
    TOO_FEW_SEEDS,
    Evidence,
    Verdict,
    claim_row,
    claimed_side,
    compare,
    decide,
    evaluates,
    rule_type,
)
from amsgrad_repro.formatting import significant
from amsgrad_repro.summaries.finals import (
    FINAL,
    lower_is_better,
    paired_differences,
    settled_seeds,
    unsettled_count,
)
from amsgrad_repro.synthetic.settle import UNSETTLED

# What a task rule's effect is: (per-seed samples, threshold, label) from the claim, its
# rows of the finals table and the whole table.
Samples = Callable[[dict[str, Any], pd.DataFrame, pd.DataFrame], tuple[np.ndarray, float, str]]


def paired_threshold(rule: dict[str, Any], rows: pd.DataFrame) -> float:
    """Where a paired claim's effect must lie beyond: the smallest difference that counts,
    ``margin`` plus ``relative_margin`` × |baseline's mean|, on the claimed side of 0.
    A margin keeps a consistent but negligible difference (1e-6 of a loss) from counting
    as a reproduced improvement."""
    size = margin_size(rule, rows)
    return -size if rule["side"] == "below" else size


def margin_size(rule: Mapping[str, Any], rows: pd.DataFrame) -> float:
    """``margin`` + ``relative_margin`` × |the baseline's mean| over its finite values in
    ``rows`` (0 for the relative part when it has none)."""
    rows = settled_seeds(rows)
    baseline = rows.loc[rows["optimizer"] == rule["baseline"], "value"].to_numpy(dtype=float)
    baseline = baseline[np.isfinite(baseline)]
    scale = abs(float(baseline.mean())) if baseline.size else 0.0
    return float(rule.get("margin", 0.0)) + float(rule.get("relative_margin", 0.0)) * scale


def _threshold_samples(claim: dict[str, Any], rows: pd.DataFrame, finals: pd.DataFrame):
    """One optimizer's per-seed values against the rule's ``value``."""
    rule, metric = claim["rule"], claim["metric"]
    statistic = rule.get("statistic", FINAL)
    rows = settled_seeds(rows)
    samples = rows.loc[rows["optimizer"] == rule["optimizer"], "value"].to_numpy()
    return samples, float(rule["value"]), f"mean {statistic} {metric} of {rule['optimizer']}"


def _differences(claim: dict[str, Any], finals: pd.DataFrame) -> tuple[np.ndarray, str]:
    """candidate − baseline seed by seed, and the effect in words."""
    rule, task, metric = claim["rule"], claim["task"], claim["metric"]
    statistic = rule.get("statistic", FINAL)
    samples = paired_differences(
        finals, task, metric, rule["candidate"], rule["baseline"], statistic
    )
    effect = f"{rule['candidate']} − {rule['baseline']} {statistic} {metric} (paired by seed)"
    return samples, effect


def _paired_samples(claim: dict[str, Any], rows: pd.DataFrame, finals: pd.DataFrame):
    """candidate − baseline seed by seed, against :func:`paired_threshold`."""
    samples, effect = _differences(claim, finals)
    return samples, paired_threshold(claim["rule"], rows), effect


def _sided(
    rule: dict[str, Any], samples: np.ndarray, threshold: float, evidence: Evidence
) -> tuple[Verdict, str]:
    """A threshold or paired rule's verdict, and the claimed side of its threshold."""
    verdict = decide(samples, threshold, rule["side"], evidence.min_seeds)
    return verdict, claimed_side(rule["side"], threshold, verdict)


def _three_way(
    rule: dict[str, Any], samples: np.ndarray, margin: float, evidence: Evidence, metric: str
) -> tuple[Verdict, str]:
    """A comparison's three-way verdict (``verdicts.compare``), and its margin in words."""
    names = (rule["candidate"], rule["baseline"])
    lower = lower_is_better(metric)
    verdict = compare(samples, margin, lower, names, evidence.min_seeds)
    shown = significant(margin, (abs(verdict.lo), abs(verdict.hi)))
    return verdict, f"margin ±{shown} ({'lower' if lower else 'higher'} is better)"


def _rows(claim: dict[str, Any], finals: pd.DataFrame) -> pd.DataFrame:
    """The finals of the claim's task, metric and statistic."""
    return finals[
        (finals["task"] == claim["task"])
        & (finals["metric"] == claim["metric"])
        & (finals["statistic"] == claim["rule"].get("statistic", FINAL))
    ]


def _compare_samples(claim: dict[str, Any], rows: pd.DataFrame, finals: pd.DataFrame):
    """candidate − baseline seed by seed, against the margin (:func:`margin_size`)."""
    samples, effect = _differences(claim, finals)
    return samples, margin_size(claim["rule"], rows), effect


def _judge_finals(claim: dict[str, Any], evidence: Evidence, samples_of: Samples) -> dict:
    """One row of the claims table for a rule on a task's finals. A claim whose optimizers
    all ran but left no finite value (every seed diverged) is inconclusive, not "not
    run"; diverged seeds are counted beside the verdict."""
    rule, finals = claim["rule"], evidence.finals
    optimizers = [rule[field] for field in rule_type(rule).optimizers]
    rows = _rows(claim, finals)
    samples, threshold, effect = samples_of(claim, rows, finals)
    if rule["type"] == "compare":
        verdict, shown = _three_way(rule, samples, threshold, evidence, claim["metric"])
    else:
        verdict, shown = _sided(rule, samples, threshold, evidence)
    ran = all((rows["optimizer"] == name).any() for name in optimizers)
    moving = {name: rows[rows["optimizer"] == name] for name in optimizers}
    outcome = _outcome(verdict.verdict, ran, moving, evidence.min_seeds)
    diverged = {
        name: int((rows.loc[rows["optimizer"] == name, "status"] == "diverged").sum())
        for name in optimizers
    }
    return claim_row(
        claim,
        effect + _unsettled_text(moving),
        shown + _unset_margin(rule, rows),
        replace(verdict, verdict=outcome),
        ", ".join(f"{k} {v}" for k, v in diverged.items()) if ran else "",
    )


def _outcome(verdict: str, ran: bool, rows_of: Mapping[str, pd.DataFrame], min_seeds: int) -> str:
    """The verdict once unsettled and diverged seeds are accounted for. A claim whose
    optimizers ran but left no usable sample is not "not run". When unsettled seeds are
    what it lacks: with ``min_seeds`` seeds run of every optimizer it is inconclusive
    (more steps are wanted, not more seeds); with fewer run it is "too few seeds"."""
    if not ran or verdict not in (NOT_RUN, TOO_FEW_SEEDS):
        return verdict
    if any(unsettled_count(rows) for rows in rows_of.values()):
        enough_ran = all(len(rows) >= min_seeds for rows in rows_of.values())
        return INCONCLUSIVE if enough_ran else TOO_FEW_SEEDS
    return INCONCLUSIVE if verdict == NOT_RUN else verdict


def _unsettled_text(rows_of: Mapping[str, pd.DataFrame]) -> str:
    """``; amsgrad 3 of 10 seeds unsettled at 1e+07 steps (counted neither way)`` for a
    synthetic task's claim ("every seed settled" when none is); "" for a training task."""
    frames = [r for r in rows_of.values() if "state" in r and r["state"].notna().any()]
    if not frames:
        return ""
    parts = []
    for name, rows in rows_of.items():
        count = unsettled_count(rows)
        if count:
            steps = rows.loc[rows["state"] == UNSETTLED, "steps"].max()
            parts.append(f"{name} {count} of {len(rows)} seeds unsettled at {steps:.3g} steps")
    if not parts:
        return "; every seed settled"
    return "; " + ", ".join(parts) + " (counted neither way)"


def _unset_margin(rule: dict[str, Any], rows: pd.DataFrame) -> str:
    """A paired claim's relative margin needs the baseline's mean; without a finite one the
    threshold printed is the absolute margin alone, and the text says so."""
    if rule["type"] not in ("paired", "compare") or not float(rule.get("relative_margin", 0.0)):
        return ""
    baseline = rows.loc[rows["optimizer"] == rule["baseline"], "value"].to_numpy(dtype=float)
    if np.isfinite(baseline).any():
        return ""
    return f" (without its relative margin: no finite {rule['baseline']} value)"


@evaluates("threshold")
def _threshold(claim: dict[str, Any], evidence: Evidence) -> dict[str, Any]:
    return _judge_finals(claim, evidence, _threshold_samples)


@evaluates("paired")
def _paired(claim: dict[str, Any], evidence: Evidence) -> dict[str, Any]:
    return _judge_finals(claim, evidence, _paired_samples)


@evaluates("compare")
def _compare(claim: dict[str, Any], evidence: Evidence) -> dict[str, Any]:
    return _judge_finals(claim, evidence, _compare_samples)


def judge(claim: dict[str, Any], evidence: Evidence) -> dict[str, Any]:
    """One row of the claims table, from the evaluator registered for the claim's rule
    type (``analysis.verdicts.EVALUATORS``); an unknown type names the claim."""
    try:
        rule_type(claim["rule"])
    except ValueError as error:
        raise ValueError(f"claim {claim['id']}: {error}") from None
    return EVALUATORS[claim["rule"]["type"]](claim, evidence)


def evaluate_claim(
    claim: dict[str, Any], finals: pd.DataFrame, min_seeds: int = DEFAULT_MIN_SEEDS
) -> dict[str, Any]:
    """One row of the claims table for a claim about a task's finals."""
    return judge(claim, Evidence(finals, {}, min_seeds))


def evaluate_claims(
    claims: list[dict[str, Any]],
    finals: pd.DataFrame,
    min_seeds: int = DEFAULT_MIN_SEEDS,
    grids: Mapping[str, grid_claims.GridData] | None = None,
) -> pd.DataFrame:
    """Every claim's row; claims about a grid (``analysis.grid_claims``) read ``grids``."""
    evidence = Evidence(finals, grids or {}, min_seeds)
    return pd.DataFrame([judge(claim, evidence) for claim in claims])
