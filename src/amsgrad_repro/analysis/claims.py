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

Two kinds of effect:

* ``threshold``: the mean over seeds of one optimizer's final (or, with
  ``statistic: best``, best logged) metric, against ``value``
  (e.g. Adam's final x on the online problem above 0.9).
* ``paired``: the mean over seeds of candidate − baseline of a final metric (same seed =
  same initialisation and data order), against the smallest difference that counts:
  ``margin + relative_margin × |baseline mean|`` on the claimed side of 0 (both default
  0), so that a consistent but negligible difference is "not reproduced", not a win.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.analysis.finals import FINAL, paired_differences
from amsgrad_repro.formatting import significant
from amsgrad_repro.stats import interval_summary

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"
TOO_FEW_SEEDS = "too few seeds"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN, TOO_FEW_SEEDS)
DEFAULT_MIN_SEEDS = 5


@dataclass(frozen=True)
class Verdict:
    verdict: str
    estimate: float
    lo: float
    hi: float
    n: int


def decide(
    samples: np.ndarray,
    threshold: float,
    claimed_side: str,
    min_seeds: int = DEFAULT_MIN_SEEDS,
) -> Verdict:
    """Verdict for "the mean of ``samples`` is ``claimed_side`` (``above``/``below``) of
    ``threshold``", from the Student-t interval of the mean; below ``min_seeds`` finite
    samples the interval decides nothing."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Verdict(NOT_RUN, float("nan"), float("nan"), float("nan"), 0)
    summary = interval_summary(values[None, :])
    mean, lo, hi = float(summary.mean[0]), float(summary.lo[0]), float(summary.hi[0])
    if claimed_side == "below":
        verdict = REPRODUCED if hi < threshold else NOT_REPRODUCED if lo > threshold else None
    elif claimed_side == "above":
        verdict = REPRODUCED if lo > threshold else NOT_REPRODUCED if hi < threshold else None
    else:
        raise ValueError(f"claimed side must be 'above' or 'below', got {claimed_side!r}")
    if values.size < min_seeds:
        verdict = TOO_FEW_SEEDS
    return Verdict(verdict or INCONCLUSIVE, mean, lo, hi, int(values.size))


def _optimizers(rule: dict[str, Any]) -> list[str]:
    if rule["type"] == "threshold":
        return [rule["optimizer"]]
    if rule["type"] == "paired":
        return [rule["candidate"], rule["baseline"]]
    raise ValueError(f"unknown rule type {rule['type']!r}")


def paired_threshold(rule: dict[str, Any], rows: pd.DataFrame) -> float:
    """Where a paired claim's effect must lie beyond: the smallest difference that counts,
    ``margin`` plus ``relative_margin`` × |baseline's mean|, on the claimed side of 0.
    A margin keeps a consistent but negligible difference (1e-6 of a loss) from counting
    as a reproduced improvement."""
    baseline = rows.loc[rows["optimizer"] == rule["baseline"], "value"].to_numpy(dtype=float)
    baseline = baseline[np.isfinite(baseline)]
    scale = abs(float(baseline.mean())) if baseline.size else 0.0
    size = float(rule.get("margin", 0.0)) + float(rule.get("relative_margin", 0.0)) * scale
    return -size if rule["side"] == "below" else size


def _samples(rule: dict[str, Any], rows: pd.DataFrame, finals: pd.DataFrame, claim: dict):
    """The per-seed values whose mean is the claim's effect, its threshold and a label."""
    task, metric = claim["task"], claim["metric"]
    statistic = rule.get("statistic", FINAL)
    if rule["type"] == "threshold":
        samples = rows.loc[rows["optimizer"] == rule["optimizer"], "value"].to_numpy()
        return samples, float(rule["value"]), f"mean {statistic} {metric} of {rule['optimizer']}"
    samples = paired_differences(
        finals, task, metric, rule["candidate"], rule["baseline"], statistic
    )
    effect = f"{rule['candidate']} − {rule['baseline']} {statistic} {metric} (paired by seed)"
    return samples, paired_threshold(rule, rows), effect


def evaluate_claim(
    claim: dict[str, Any], finals: pd.DataFrame, min_seeds: int = DEFAULT_MIN_SEEDS
) -> dict[str, Any]:
    """One row of the claims table. A claim whose optimizers all ran but left no finite
    value (every seed diverged) is inconclusive, not "not run"; diverged seeds are counted
    beside the verdict."""
    rule = claim["rule"]
    try:
        optimizers = _optimizers(rule)
    except ValueError as error:
        raise ValueError(f"claim {claim['id']}: {error}") from None
    rows = finals[
        (finals["task"] == claim["task"])
        & (finals["metric"] == claim["metric"])
        & (finals["statistic"] == rule.get("statistic", FINAL))
    ]
    samples, threshold, effect = _samples(rule, rows, finals, claim)
    verdict = decide(samples, threshold, rule["side"], min_seeds)
    ran = all((rows["optimizer"] == name).any() for name in optimizers)
    outcome = INCONCLUSIVE if verdict.verdict == NOT_RUN and ran else verdict.verdict
    diverged = {
        name: int((rows.loc[rows["optimizer"] == name, "status"] == "diverged").sum())
        for name in optimizers
    }
    return claim_row(
        claim,
        effect,
        claimed_side(rule["side"], threshold, verdict) + _unset_margin(rule, rows),
        replace(verdict, verdict=outcome),
        ", ".join(f"{k} {v}" for k, v in diverged.items()) if ran else "",
    )


def claimed_side(side: str, threshold: float, verdict: Verdict) -> str:
    """``below -0.01034``: the claimed side of the threshold, printed with the digits it
    takes to keep its sign and its place against the interval (``formatting.significant``):
    never "below -0", never a threshold that looks equal to a bound it is not."""
    return f"{side} {significant(threshold, (verdict.lo, verdict.hi, verdict.estimate))}"


def _unset_margin(rule: dict[str, Any], rows: pd.DataFrame) -> str:
    """A paired claim's relative margin needs the baseline's mean; without a finite one the
    threshold printed is the absolute margin alone, and the text says so."""
    if rule["type"] != "paired" or not float(rule.get("relative_margin", 0.0)):
        return ""
    baseline = rows.loc[rows["optimizer"] == rule["baseline"], "value"].to_numpy(dtype=float)
    if np.isfinite(baseline).any():
        return ""
    return f" (without its relative margin: no finite {rule['baseline']} value)"


def claim_row(
    claim: dict[str, Any], effect: str, threshold: str, verdict: Verdict, diverged: str
) -> dict[str, Any]:
    """One row of the claims table (every rule type, grids' included, gives these)."""
    return {
        "id": claim["id"],
        "source": claim["source"],
        "claim": claim["statement"],
        "task": claim["task"],
        "effect": effect,
        "threshold": threshold,
        "estimate": verdict.estimate,
        "lo": verdict.lo,
        "hi": verdict.hi,
        "n_seeds": verdict.n,
        "diverged": diverged,
        "verdict": verdict.verdict,
    }


def evaluate_claims(
    claims: list[dict[str, Any]],
    finals: pd.DataFrame,
    min_seeds: int = DEFAULT_MIN_SEEDS,
    grids: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Every claim's row; claims about a grid (``analysis.grid_claims``) read ``grids``."""
    from amsgrad_repro.analysis import grid_claims

    return pd.DataFrame(
        [
            grid_claims.evaluate_claim(claim, grids or {}, min_seeds)
            if grid_claims.handles(claim)
            else evaluate_claim(claim, finals, min_seeds)
            for claim in claims
        ]
    )
