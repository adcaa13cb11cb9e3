"""The verdicts, the verdict record and the registry of claim rules: the leaf of ``analysis``.

Every rule type a claim may use is declared here once (:data:`RULE_TYPES`: what it judges,
which of its fields name optimizers, which fields it needs), so that the claims schema
checks ``workflow/claims.yaml`` at start-up from the declarations alone, without importing
the evaluators (pandas, the grids). Each evaluator registers itself for its rule type with
:func:`evaluates` in the module that defines it (``analysis.claims``: a task's finals;
``analysis.grid_claims``: a grid's table), and ``analysis.claims.evaluate_claims`` looks
every claim's evaluator up in :data:`EVALUATORS`. Nothing here imports another module of
``analysis``, so those modules import this one and never each other in a circle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from amsgrad_repro.formatting import significant
from amsgrad_repro.stats import interval_summary

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"
TOO_FEW_SEEDS = "too few seeds"
# The three-way verdicts of an open question (rule type ``compare``): one optimizer better
# than the other by more than the margin, or the two within it (an equivalence test).
NO_DIFFERENCE = "no practical difference"
BETTER = " better"  # "amsgrad better": the optimizer's name, then this
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN, TOO_FEW_SEEDS, NO_DIFFERENCE)
DEFAULT_MIN_SEEDS = 5
SIDES = ("above", "below")


@dataclass(frozen=True)
class Verdict:
    verdict: str
    estimate: float
    lo: float
    hi: float
    n: int


@dataclass(frozen=True)
class RuleType:
    """One rule type's declaration. ``subject`` is what a claim's ``task`` names: a
    training or synthetic ``task`` (judged on the finals table) or a ``grid`` (judged on
    the grid's table); ``optimizers`` are the fields naming an optimizer; ``required`` and
    ``optional`` the other fields of the rule besides ``type``."""

    subject: str
    optimizers: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return ("type", *self.optimizers, *self.required, *self.optional)


RULE_TYPES: dict[str, RuleType] = {
    "threshold": RuleType("task", ("optimizer",), ("side", "value"), ("statistic",)),
    "paired": RuleType(
        "task",
        ("candidate", "baseline"),
        ("side",),
        ("statistic", "margin", "relative_margin"),
    ),
    "compare": RuleType(
        "task",
        ("candidate", "baseline"),
        (),
        ("statistic", "margin", "relative_margin"),
    ),
    "grid_threshold": RuleType("grid", ("optimizer",), ("problem", "side", "value"), ("where",)),
    "grid_boundary": RuleType("grid", ("optimizer",), ("problem", "axis"), ("where",)),
    "grid_agreement": RuleType(
        "grid",
        ("optimizer",),
        ("problem", "prediction", "side", "value"),
        ("where", "cells", "min_cells"),
    ),
}


@dataclass(frozen=True)
class Evidence:
    """What claims are judged on: the per-seed finals of the tasks (a pandas frame,
    ``summaries.finals``), the grids' tables by name (``analysis.grid_claims.GridData``) and
    the fewest finite seeds that decide a verdict."""

    finals: Any
    grids: Mapping[str, Any]
    min_seeds: int = DEFAULT_MIN_SEEDS


Evaluator = Callable[[dict[str, Any], Evidence], dict[str, Any]]
EVALUATORS: dict[str, Evaluator] = {}


def rule_type(rule: Mapping[str, Any]) -> RuleType:
    """The declaration of ``rule``'s type; an unknown type is a one-line error naming the
    known ones."""
    name = rule.get("type")
    if name not in RULE_TYPES:
        raise ValueError(f"unknown rule type {name!r} (known: {', '.join(RULE_TYPES)})")
    return RULE_TYPES[name]


def evaluates(name: str) -> Callable[[Evaluator], Evaluator]:
    """Register the decorated function as the evaluator of the declared rule type ``name``
    (a second evaluator for one type, or one for an undeclared type, is a bug)."""
    if name not in RULE_TYPES:
        raise ValueError(f"rule type {name!r} is not declared in analysis.verdicts.RULE_TYPES")

    def register(function: Evaluator) -> Evaluator:
        if name in EVALUATORS:
            raise ValueError(f"rule type {name!r} has two evaluators")
        EVALUATORS[name] = function
        return function

    return register


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


def better(name: str) -> str:
    """The verdict "``name`` better" of a comparison (rule type ``compare``)."""
    return f"{name}{BETTER}"


def is_verdict(text: str) -> bool:
    """Whether ``text`` is a verdict: one of :data:`VERDICTS` or "<optimizer> better"."""
    return text in VERDICTS or (text.endswith(BETTER) and len(text) > len(BETTER))


def decided(text: str) -> bool:
    """Whether the data decided the verdict ``text`` (not "not run", not "too few seeds")."""
    return text not in (NOT_RUN, TOO_FEW_SEEDS) and is_verdict(text)


def compare(
    samples: np.ndarray,
    margin: float,
    lower_better: bool,
    names: tuple[str, str],
    min_seeds: int = DEFAULT_MIN_SEEDS,
) -> Verdict:
    """Three-way verdict on candidate − baseline per seed (``names``: candidate,
    baseline), from the same 95% Student-t interval of the mean as :func:`decide`:

    * the whole interval beyond ``margin`` on the better side → "<candidate> better"
      (beyond −margin for a metric where lower is better, beyond +margin otherwise);
    * the whole interval beyond the margin on the other side → "<baseline> better";
    * the whole interval strictly inside (−margin, +margin) → "no practical difference":
      the two one-sided tests (TOST) at 2.5% each reject a difference of ±margin, an
      equivalence shown, not a difference merely not found;
    * otherwise (it reaches or crosses ±margin) → inconclusive.

    Each bound is compared strictly: an interval that touches the margin has not shown
    the difference to lie on either side of it. Below ``min_seeds`` finite samples the
    interval decides nothing ("too few seeds"); a margin of 0 can show no equivalence."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Verdict(NOT_RUN, float("nan"), float("nan"), float("nan"), 0)
    if not margin >= 0:
        raise ValueError(f"a comparison's margin must be a number >= 0, got {margin!r}")
    summary = interval_summary(values[None, :])
    mean, lo, hi = float(summary.mean[0]), float(summary.lo[0]), float(summary.hi[0])
    sign = -1.0 if lower_better else 1.0  # the candidate's better direction
    low, high = sorted((sign * lo, sign * hi))  # the interval with "better" upwards
    if low > margin:
        verdict = better(names[0])
    elif high < -margin:
        verdict = better(names[1])
    elif -margin < low and high < margin:
        verdict = NO_DIFFERENCE
    else:
        verdict = INCONCLUSIVE
    if values.size < min_seeds:
        verdict = TOO_FEW_SEEDS
    return Verdict(verdict, mean, lo, hi, int(values.size))


def claimed_side(side: str, threshold: float, verdict: Verdict) -> str:
    """``below -0.01034``: the claimed side of the threshold, printed with the digits it
    takes to keep its sign and its place against the interval (``formatting.significant``):
    never "below -0", never a threshold that looks equal to a bound it is not."""
    return f"{side} {significant(threshold, (verdict.lo, verdict.hi, verdict.estimate))}"


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
