"""The three-way verdict of an open question (rule type ``compare``) on constructed data
whose right verdict is known, the margin's edge cases included.

The data are built so that the 95% Student-t interval is known exactly: five paired
differences ``c + d·(-2, -1, 0, 1, 2)`` have mean ``c`` and standard deviation
``d·√(10/4)``, so the interval is ``c ± h`` with ``h = t(0.975, 4)·d·√(10/4)/√5``. Choosing
``d`` from a wanted half-width ``h`` puts a bound exactly where a test needs it (on the
margin, a hair inside it, a hair outside) up to float64 rounding of a few ulps, and the
hair is a million times wider than that.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t

from amsgrad_repro.analysis.claims import evaluate_claims
from amsgrad_repro.analysis.verdicts import (
    INCONCLUSIVE,
    NO_DIFFERENCE,
    NOT_RUN,
    TOO_FEW_SEEDS,
    better,
    compare,
    decided,
    is_verdict,
)
from tests.test_claims import finals_frame

SHAPE = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
T4 = float(t.ppf(0.975, 4))
HAIR = 1e-9  # far above the rounding of the interval (~1e-16 relative), far below the data
NAMES = ("amsgrad", "adam")


def differences(centre: float, half: float) -> np.ndarray:
    """Five differences whose 95% interval is exactly centre ± half."""
    spread = half / (T4 * np.sqrt(10 / 4) / np.sqrt(5))
    return centre + spread * SHAPE


def verdict(samples, margin=1.0, lower_better=True, min_seeds=5) -> str:
    return compare(np.asarray(samples), margin, lower_better, NAMES, min_seeds).verdict


def test_the_constructed_interval_is_what_it_is_built_to_be():
    found = compare(differences(0.3, 0.5), 1.0, True, NAMES)
    assert found.estimate == pytest.approx(0.3, abs=1e-12)
    assert found.lo == pytest.approx(-0.2, abs=1e-12) and found.hi == pytest.approx(0.8, abs=1e-12)


@pytest.mark.parametrize(
    ("centre", "half", "expected"),
    [
        # Lower is better: a difference below -margin is the candidate's win.
        (-2.0, 0.5, better("amsgrad")),  # [-2.5, -1.5]
        (2.0, 0.5, better("adam")),  # [1.5, 2.5]
        (0.0, 0.5, NO_DIFFERENCE),  # [-0.5, 0.5] inside ±1
        (0.5, 0.5 - HAIR, NO_DIFFERENCE),  # upper bound a hair inside +1
        (-0.5, 0.5 - HAIR, NO_DIFFERENCE),  # lower bound a hair inside -1
        (0.5, 0.5 + HAIR, INCONCLUSIVE),  # a hair across +1: equivalence not shown
        (-1.5, 0.5 - HAIR, better("amsgrad")),  # upper bound a hair beyond -1
        (-1.5, 0.5 + HAIR, INCONCLUSIVE),  # upper bound a hair short of -1
        (1.5, 0.5 - HAIR, better("adam")),
        (1.5, 0.5 + HAIR, INCONCLUSIVE),
        (-0.6, 0.5, INCONCLUSIVE),  # [-1.1, -0.1]: significant, not beyond the margin
        (0.0, 3.0, INCONCLUSIVE),  # wide: crosses both margins
        (-1.0, 0.5, INCONCLUSIVE),  # centred on -margin: straddles it
    ],
)
def test_three_way_verdict_and_the_margin_s_edges(centre, half, expected):
    assert verdict(differences(centre, half)) == expected


def test_an_interval_exactly_at_the_margin_is_inconclusive():
    """A bound equal to the margin has not shown the difference on either side of it
    (every comparison is strict). Exact bounds: one seed's zero-width interval, or equal
    differences (zero spread), with min_seeds lowered so that the interval decides."""
    assert verdict([1.0], min_seeds=1) == INCONCLUSIVE
    assert verdict([-1.0], min_seeds=1) == INCONCLUSIVE
    assert verdict([1.0] * 5) == INCONCLUSIVE
    assert verdict([-1.0] * 5) == INCONCLUSIVE
    assert verdict([0.25] * 5) == NO_DIFFERENCE  # zero spread, inside
    assert verdict([-1.25] * 5) == better("amsgrad")


def test_the_better_side_follows_the_metric():
    """For a metric where higher is better (an accuracy) the candidate wins above +margin."""
    high = differences(2.0, 0.5)
    assert verdict(high, lower_better=False) == better("amsgrad")
    assert verdict(high, lower_better=True) == better("adam")
    assert verdict(-high, lower_better=False) == better("adam")
    assert verdict(differences(0.0, 0.5), lower_better=False) == NO_DIFFERENCE


def test_one_sided_evidence_is_not_equivalence():
    """An interval inside the margin on one side but past it on the other shows neither
    equivalence nor a difference beyond the margin."""
    assert verdict(differences(0.9, 0.3)) == INCONCLUSIVE  # [0.6, 1.2]
    assert verdict(differences(-0.9, 0.3)) == INCONCLUSIVE  # [-1.2, -0.6]


def test_too_few_seeds_decide_nothing_but_keep_the_estimate():
    samples = differences(-3.0, 0.5)[:4]  # four seeds, clearly beyond the margin
    found = compare(samples, 1.0, True, NAMES, min_seeds=5)
    assert found.verdict == TOO_FEW_SEEDS and found.n == 4
    assert found.hi < -1.0  # the interval would decide: the seed count stops it
    assert compare(samples, 1.0, True, NAMES, min_seeds=4).verdict == better("amsgrad")
    # Non-finite seeds (diverged) do not count towards the minimum.
    with_nan = np.append(samples, np.nan)
    assert compare(with_nan, 1.0, True, NAMES, min_seeds=5).verdict == TOO_FEW_SEEDS
    assert compare(np.array([np.nan]), 1.0, True, NAMES).verdict == NOT_RUN


def test_a_zero_margin_never_shows_equivalence_and_a_bad_one_is_refused():
    assert verdict([0.0] * 5, margin=0.0) == INCONCLUSIVE
    assert verdict(differences(-2.0, 0.5), margin=0.0) == better("amsgrad")
    with pytest.raises(ValueError, match="margin"):
        compare(np.zeros(5), float("nan"), True, NAMES)


def test_verdict_names():
    assert is_verdict(better("my-plugin")) and is_verdict(NO_DIFFERENCE)
    assert not is_verdict(" better") and not is_verdict("nonsense")
    assert decided(better("adam")) and decided(INCONCLUSIVE) and not decided(TOO_FEW_SEEDS)


COMPARE = {
    "id": "open",
    "source": "s",
    "statement": "Does AMSGrad differ from Adam?",
    "task": "logreg",
    "metric": "test_accuracy",
    "rule": {"type": "compare", "candidate": "amsgrad", "baseline": "adam", "margin": 0.005},
}


def claim_row(adam, candidate, claim=COMPARE, name="amsgrad", metric="test_accuracy"):
    frame = finals_frame({"adam": adam, name: candidate}, metric=metric)
    return evaluate_claims([claim], frame).iloc[0]


def test_a_comparison_claim_on_finals():
    """Through the claims table: accuracy (higher is better) with an absolute margin of 0.5
    points, paired by seed (the seeds' shared offsets cancel)."""
    rng = np.random.default_rng(0)
    adam = 0.85 + rng.normal(0, 0.02, size=8)
    row = claim_row(list(adam), list(adam + 0.02 + rng.normal(0, 0.001, size=8)))
    assert row["verdict"] == better("amsgrad") and row["lo"] > 0.005
    assert row["threshold"] == "margin ±0.005 (higher is better)"
    same = claim_row(list(adam), list(adam + rng.normal(0, 0.001, size=8)))
    assert same["verdict"] == NO_DIFFERENCE and -0.005 < same["lo"] < same["hi"] < 0.005
    worse = claim_row(list(adam), list(adam - 0.02 + rng.normal(0, 0.001, size=8)))
    assert worse["verdict"] == better("adam")
    few = claim_row(list(adam[:3]), list(adam[:3] + 0.02))
    assert few["verdict"] == TOO_FEW_SEEDS and few["n_seeds"] == 3


def test_a_relative_margin_scales_with_the_baseline_and_any_pair_compares():
    """A loss margin of 1% of the baseline's mean; the candidate may be any optimizer (a
    plug-in's name here), the baseline any other."""
    claim = {
        **COMPARE,
        "metric": "test_loss",
        "rule": {
            "type": "compare",
            "candidate": "my-plugin",
            "baseline": "adam",
            "relative_margin": 0.01,
        },
    }
    adam = [10.0, 10.2, 9.8, 10.1, 9.9]
    inside = [a + 0.05 + 0.001 * i for i, a in enumerate(adam)]  # +0.5%, margin 0.1
    row = claim_row(adam, inside, claim, "my-plugin", "test_loss")
    assert row["verdict"] == NO_DIFFERENCE
    assert row["threshold"] == "margin ±0.1 (lower is better)"
    beyond = [a - 0.5 + 0.001 * i for i, a in enumerate(adam)]  # -5%
    assert claim_row(adam, beyond, claim, "my-plugin", "test_loss")["verdict"] == better(
        "my-plugin"
    )
    missing = evaluate_claims([claim], finals_frame({"adam": adam}, metric="test_loss"))
    assert missing.iloc[0]["verdict"] == NOT_RUN
