"""The paper's claims, each checked against the measurements with a written-down rule.

Decision rule (docs/claims.md): every claim is a statement about a measured effect; we take
the 95% percentile-bootstrap interval of that effect over seeds and compare it with the
claimed side of a threshold:

* the whole interval on the claimed side      → **reproduced**
* the whole interval on the opposite side     → **not reproduced**
* the interval contains the threshold         → **inconclusive**
* the task (or an optimizer it needs) not run → **not run**

Two kinds of effect:

* ``threshold``: the mean over seeds of one optimizer's final metric, against ``value``
  (e.g. Adam's final x on the online problem above 0.9).
* ``paired``: the mean over seeds of candidate − baseline of a final metric (same seed =
  same initialisation and data order), against 0, or ``margin`` if given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.analysis.finals import paired_differences
from amsgrad_repro.stats import bootstrap_summary

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    estimate: float
    lo: float
    hi: float
    n: int


def decide(samples: np.ndarray, threshold: float, claimed_side: str) -> Verdict:
    """Verdict for "the mean of ``samples`` is ``claimed_side`` (``above``/``below``) of
    ``threshold``", from the bootstrap interval of the mean."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Verdict(NOT_RUN, float("nan"), float("nan"), float("nan"), 0)
    summary = bootstrap_summary(values[None, :])
    mean, lo, hi = float(summary.mean[0]), float(summary.lo[0]), float(summary.hi[0])
    if claimed_side == "below":
        verdict = REPRODUCED if hi < threshold else NOT_REPRODUCED if lo > threshold else None
    elif claimed_side == "above":
        verdict = REPRODUCED if lo > threshold else NOT_REPRODUCED if hi < threshold else None
    else:
        raise ValueError(f"claimed side must be 'above' or 'below', got {claimed_side!r}")
    return Verdict(verdict or INCONCLUSIVE, mean, lo, hi, int(values.size))


def evaluate_claim(claim: dict[str, Any], finals: pd.DataFrame) -> dict[str, Any]:
    """One row of the claims table."""
    rule = claim["rule"]
    task, metric = claim["task"], claim["metric"]
    ran = finals[(finals["task"] == task) & (finals["metric"] == metric)]
    if rule["type"] == "threshold":
        samples = ran.loc[ran["optimizer"] == rule["optimizer"], "value"].to_numpy()
        threshold = float(rule["value"])
        effect = f"mean final {metric} of {rule['optimizer']}"
    elif rule["type"] == "paired":
        samples = paired_differences(finals, task, metric, rule["candidate"], rule["baseline"])
        threshold = float(rule.get("margin", 0.0))
        effect = f"{rule['candidate']} − {rule['baseline']} final {metric} (paired by seed)"
    else:
        raise ValueError(f"claim {claim['id']}: unknown rule type {rule['type']!r}")
    verdict = decide(samples, threshold, rule["side"])
    return {
        "id": claim["id"],
        "source": claim["source"],
        "claim": claim["statement"],
        "task": task,
        "effect": effect,
        "threshold": f"{rule['side']} {threshold:g}",
        "estimate": verdict.estimate,
        "lo": verdict.lo,
        "hi": verdict.hi,
        "n_seeds": verdict.n,
        "verdict": verdict.verdict,
    }


def evaluate_claims(claims: list[dict[str, Any]], finals: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([evaluate_claim(claim, finals) for claim in claims])
