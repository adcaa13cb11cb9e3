"""The verdict rule on inputs whose right verdict is known, and the tables around it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amsgrad_repro.analysis.claims import evaluate_claims
from amsgrad_repro.analysis.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    TOO_FEW_SEEDS,
    decide,
)
from amsgrad_repro.summaries.finals import finals_table, paired_table, time_to_target


def finals_frame(values: dict[str, list[float]], task="logreg", metric="train_loss"):
    rows = [
        {
            "task": task,
            "optimizer": opt,
            "seed": seed,
            "status": "completed",
            "statistic": "final",
            "metric": metric,
            "value": value,
        }
        for opt, seeds in values.items()
        for seed, value in enumerate(seeds)
    ]
    return pd.DataFrame(rows)


PAIRED_CLAIM = {
    "id": "c",
    "source": "s",
    "statement": "AMSGrad is lower",
    "task": "logreg",
    "metric": "train_loss",
    "rule": {"type": "paired", "candidate": "amsgrad", "baseline": "adam", "side": "below"},
}


def verdict_for(adam, amsgrad):
    frame = finals_frame({"adam": adam, "amsgrad": amsgrad})
    return evaluate_claims([PAIRED_CLAIM], frame).iloc[0]


def test_clear_win_is_reproduced():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.3, size=10)  # seeds differ a lot, the pairing removes it
    row = verdict_for(list(base), list(base - 0.05 + rng.normal(0, 0.005, size=10)))
    assert row["verdict"] == REPRODUCED
    # statistical: the mean of 10 N(0, 0.005) draws has σ = 0.0016, so 0.01 is 6σ
    assert row["hi"] < 0 and row["estimate"] == pytest.approx(-0.05, abs=0.01)


def test_clear_loss_is_not_reproduced():
    rng = np.random.default_rng(1)
    base = rng.normal(1.0, 0.3, size=10)
    row = verdict_for(list(base), list(base + 0.05 + rng.normal(0, 0.005, size=10)))
    assert row["verdict"] == NOT_REPRODUCED and row["lo"] > 0


def test_noise_is_inconclusive():
    rng = np.random.default_rng(2)
    base = rng.normal(1.0, 0.3, size=10)
    row = verdict_for(list(base), list(base + rng.normal(0, 0.05, size=10)))
    assert row["verdict"] == INCONCLUSIVE and row["lo"] < 0 < row["hi"]


def test_missing_task_or_optimizer_is_not_run():
    frame = finals_frame({"adam": [1.0, 1.1]})
    assert evaluate_claims([PAIRED_CLAIM], frame).iloc[0]["verdict"] == NOT_RUN
    other = finals_frame({"adam": [1.0], "amsgrad": [0.5]}, task="mlp")
    assert evaluate_claims([PAIRED_CLAIM], other).iloc[0]["verdict"] == NOT_RUN


def test_threshold_rule_both_sides():
    assert decide(np.array([0.99, 0.98, 1.0, 0.99, 0.97]), 0.9, "above").verdict == REPRODUCED
    down = np.array([-0.99, -0.98, -1.0, -0.97, -0.99])
    assert decide(down, 0.9, "above").verdict == NOT_REPRODUCED
    assert decide(np.array([0.5, 1.3, 0.2, 1.5, 0.9]), 0.9, "above").verdict == INCONCLUSIVE
    assert decide(down, -0.9, "below").verdict == REPRODUCED
    assert decide(np.array([np.nan, np.nan]), -0.9, "below").verdict == NOT_RUN


def test_below_the_minimum_seed_count_the_verdict_is_too_few_seeds():
    """Two seeds that agree perfectly used to be "reproduced" (the percentile bootstrap of
    two values is their min and max); now the interval is reported but decides nothing."""
    two = decide(np.array([0.99, 0.98]), 0.9, "above")
    assert two.verdict == TOO_FEW_SEEDS and two.n == 2
    # The Student-t interval of two seeds is wide (t = 12.7), not the min and max.
    assert two.lo < 0.98 - 0.05 and two.hi > 0.99 + 0.05
    assert decide(np.array([0.99, 0.98, 0.97, 0.99]), 0.9, "above").verdict == TOO_FEW_SEEDS
    assert decide(np.array([0.99, 0.98]), 0.9, "above", min_seeds=2).verdict == REPRODUCED
    five = [0.99, 0.98, 0.97, 0.99, 0.985]
    assert decide(np.array(five), 0.9, "above").verdict == REPRODUCED
    # Diverged seeds do not count: 3 finite of 5 is too few.
    frame = finals_frame({"adam": five, "amsgrad": [0.5, 0.5, 0.5, np.nan, np.nan]})
    frame.loc[frame["value"].isna(), "status"] = "diverged"
    row = evaluate_claims([PAIRED_CLAIM], frame).iloc[0]
    assert row["verdict"] == TOO_FEW_SEEDS and row["n_seeds"] == 3


def test_diverged_runs_count_as_diverged_not_as_numbers():
    frame = finals_frame({"adam": [1.0, 1.2, 1.1]})
    frame.loc[1, ["status", "value"]] = ["diverged", np.nan]
    row = finals_table(frame).iloc[0]
    assert row["n"] == 2 and row["diverged"] == 1
    assert row["mean"] == pytest.approx(1.05, rel=1e-12)  # a mean of 2 decimals: ≤ 2 ulps


def test_paired_table_probability_of_improvement():
    frame = finals_frame({"adam": [1.0, 1.0, 1.0, 1.0], "amsgrad": [0.9, 0.8, 1.1, 0.95]})
    row = paired_table(frame, [["amsgrad", "adam"]]).iloc[0]
    # a share of 4 and a mean of 4 differences of decimals: ≲ 10 ulps, so rel=1e-12
    assert row["p_improvement"] == pytest.approx(0.75, rel=1e-12)
    assert row["mean_diff"] == pytest.approx(-0.0625, rel=1e-12)
    accuracy = finals_frame({"adam": [0.9, 0.9], "amsgrad": [0.95, 0.85]}, metric="test_accuracy")
    assert paired_table(accuracy, [["amsgrad", "adam"]]).iloc[0]["p_improvement"] == 0.5


def test_paired_table_counts_unsettled_seeds_instead_of_dropping_them():
    """A seed where either run was still moving is left out of the estimate and counted;
    a pair left with no settled seed keeps its row, with no estimate."""
    frame = finals_frame({"adam": [1.0, 1.0, 1.0], "amsgrad": [0.9, 0.8, 0.7]})
    frame["state"] = "converged"
    frame.loc[(frame["optimizer"] == "amsgrad") & (frame["seed"] == 0), "state"] = "unsettled"
    row = paired_table(frame, [["amsgrad", "adam"]]).iloc[0]
    assert row["n"] == 2 and row["unsettled"] == 1
    assert row["mean_diff"] == pytest.approx(-0.25, rel=1e-12)  # (-0.2 - 0.3) / 2, a few ulps
    frame["state"] = "unsettled"
    row = paired_table(frame, [["amsgrad", "adam"]]).iloc[0]
    assert row["n"] == 0 and row["unsettled"] == 3 and np.isnan(row["mean_diff"])


def test_time_to_target_counts_misses_as_the_budget():
    aggregate = pd.DataFrame(
        {
            "optimizer": ["adam"] * 3 + ["amsgrad"] * 3,
            "step": [1, 10, 100] * 2,
            "metric": "x",
            "mean": [0.5, 0.8, 1.0, 0.0, -0.95, -1.0],
        }
    )
    table = time_to_target(aggregate, "synthetic_online", {"x": -0.9}).set_index("optimizer")
    assert table.loc["amsgrad", "stays_from_step"] == 10 and table.loc["amsgrad", "reached"]
    assert table.loc["adam", "stays_from_step"] == 100 and not table.loc["adam", "reached"]


def test_time_to_target_ignores_a_brief_early_crossing():
    """Adam's x on the online problem dips below -0.9 at step 3 and then drifts to +1: it
    never reaches the optimum, whatever the early crossing says. AMSGrad crosses at 3,
    comes back, and stays past the target from step 30 on."""
    steps = [1, 3, 10, 30, 100]
    aggregate = pd.DataFrame(
        {
            "optimizer": ["adam"] * 5 + ["amsgrad"] * 5,
            "step": steps * 2,
            "metric": "x",
            "mean": [0.0, -0.95, 0.2, 0.9, 1.0, 0.0, -0.95, -0.5, -0.92, -0.99],
        }
    )
    table = time_to_target(aggregate, "synthetic_online", {"x": -0.9}).set_index("optimizer")
    assert not table.loc["adam", "reached"] and table.loc["adam", "stays_from_step"] == 100
    assert table.loc["amsgrad", "reached"] and table.loc["amsgrad", "stays_from_step"] == 30


def test_negligible_consistent_gain_is_not_a_win_with_a_margin():
    """1e-6 lower on every seed: significant, but far below the 1% that counts."""
    rng = np.random.default_rng(3)
    base = rng.normal(1.0, 0.3, size=10)
    frame = finals_frame({"adam": list(base), "amsgrad": list(base - 1e-6)})
    strict = evaluate_claims([PAIRED_CLAIM], frame).iloc[0]
    assert strict["verdict"] == REPRODUCED  # no margin: any consistent gain counts
    with_margin = {**PAIRED_CLAIM, "rule": {**PAIRED_CLAIM["rule"], "relative_margin": 0.01}}
    row = evaluate_claims([with_margin], frame).iloc[0]
    assert row["verdict"] == NOT_REPRODUCED
    assert row["threshold"] == f"below {-0.01 * abs(base.mean()):g}"
    # A 5% gain clears the same margin.
    frame = finals_frame({"adam": list(base), "amsgrad": list(base * 0.95)})
    assert evaluate_claims([with_margin], frame).iloc[0]["verdict"] == REPRODUCED


def test_higher_is_better_claims_put_the_margin_above_zero():
    claim = {
        **PAIRED_CLAIM,
        "metric": "test_accuracy",
        "rule": {**PAIRED_CLAIM["rule"], "side": "above", "margin": 0.01},
    }
    adam = [0.8, 0.82, 0.81, 0.8, 0.82]
    win = finals_frame(
        {"adam": adam, "amsgrad": [0.85, 0.86, 0.86, 0.85, 0.87]}, metric="test_accuracy"
    )
    small = finals_frame(
        {"adam": adam, "amsgrad": [0.805, 0.824, 0.813, 0.803, 0.822]}, metric="test_accuracy"
    )
    assert evaluate_claims([claim], win).iloc[0]["verdict"] == REPRODUCED
    assert evaluate_claims([claim], small).iloc[0]["verdict"] == NOT_REPRODUCED


def test_every_seed_diverged_is_inconclusive_and_counted():
    frame = finals_frame({"adam": [1.0, 1.1], "amsgrad": [np.nan, np.nan]})
    frame.loc[frame["optimizer"] == "amsgrad", "status"] = "diverged"
    row = evaluate_claims([PAIRED_CLAIM], frame).iloc[0]
    assert row["verdict"] == INCONCLUSIVE
    assert row["diverged"] == "amsgrad 2, adam 0"


def test_best_statistic_is_judged_when_asked():
    frame = pd.concat(
        [
            finals_frame({"adam": [1.0] * 5, "amsgrad": [1.1] * 5}),
            finals_frame({"adam": [0.9] * 5, "amsgrad": [0.5, 0.52, 0.51, 0.5, 0.53]}).assign(
                statistic="best"
            ),
        ]
    )
    best = {**PAIRED_CLAIM, "rule": {**PAIRED_CLAIM["rule"], "statistic": "best"}}
    assert evaluate_claims([PAIRED_CLAIM], frame).iloc[0]["verdict"] == NOT_REPRODUCED
    assert evaluate_claims([best], frame).iloc[0]["verdict"] == REPRODUCED


def test_a_threshold_of_zero_is_never_printed_as_minus_zero():
    """No margin on the claimed side "below" is −0.0: printed "0"; a claim that did not run
    (no baseline values either) says the same, and a relative margin it could not compute
    is named, not shown as −0."""
    frame = finals_frame({"adam": [1.0, 1.1, 1.2], "amsgrad": [0.9, 1.0, 1.1]})
    assert evaluate_claims([PAIRED_CLAIM], frame).iloc[0]["threshold"] == "below 0"
    empty = frame.iloc[0:0]
    assert evaluate_claims([PAIRED_CLAIM], empty).iloc[0]["threshold"] == "below 0"
    with_margin = {**PAIRED_CLAIM, "rule": {**PAIRED_CLAIM["rule"], "relative_margin": 0.01}}
    row = evaluate_claims([with_margin], empty).iloc[0]
    assert row["verdict"] == NOT_RUN
    assert row["threshold"] == "below 0 (without its relative margin: no finite adam value)"


def test_the_claimed_side_has_the_digits_that_keep_it_apart_from_the_interval():
    from amsgrad_repro.analysis.verdicts import Verdict, claimed_side
    from amsgrad_repro.formatting import significant

    # Six digits (":g") would show the threshold equal to the bound it is compared with.
    verdict = Verdict(REPRODUCED, -0.0100000009, -0.0100000012, -0.0100000004, 5)
    text = claimed_side("below", -0.0100000002, verdict)
    assert text == "below -0.0100000002", text
    assert float(text.split()[1]) > verdict.hi  # on the right side of the bound, as printed
    assert claimed_side("below", -0.0103456, Verdict(REPRODUCED, -1, -2, -0.5, 5)) == (
        "below -0.0103456"
    )
    assert significant(-0.0) == "0" and significant(1e-300) == "1e-300"
    assert significant(0.9999999, near=[1.0]) == "0.9999999"  # not "1", which it is below


def test_a_verdict_decided_on_a_shortened_run_says_so_in_its_tag():
    from amsgrad_repro.analysis.tables import summary_text

    claims = pd.DataFrame(
        {
            "id": ["grid_claim", "seeded_claim", "full_claim"],
            "claim": ["c"] * 3,
            "verdict": [REPRODUCED, TOO_FEW_SEEDS, NOT_REPRODUCED],
            "effect": ["e"] * 3,
            "estimate": [0.5] * 3,
            "lo": [0.4] * 3,
            "hi": [0.6] * 3,
            "n_seeds": [1, 2, 10],
            "threshold": ["above 0.1"] * 3,
            "diverged": [""] * 3,
            "scale": ["smoke", "smoke", "paper"],
            "run_length": ["20000 of 1000000 steps", "1 of 100 epochs", "100 of 100 epochs"],
            "shortened": [True, True, False],
            "reductions": ["SHORTENED: 20000 of 1000000 steps", "SHORTENED: 1 of 100 epochs", ""],
        }
    )
    empty = pd.DataFrame(columns=["statistic"])
    text = summary_text(claims, pd.DataFrame(), empty, pd.DataFrame())
    assert "[REPRODUCED, SHORTENED] grid_claim (smoke: 20000 of 1000000 steps; SHORTENED:" in text
    assert "[TOO FEW SEEDS] seeded_claim (smoke:" in text  # decided nothing: nothing to flag
    assert "[NOT REPRODUCED] full_claim (paper: 100 of 100 epochs)" in text


def test_every_declared_rule_type_has_one_evaluator_and_an_unknown_one_is_named():
    from amsgrad_repro.analysis import grid_claims
    from amsgrad_repro.analysis.verdicts import EVALUATORS, RULE_TYPES, evaluates

    assert set(EVALUATORS) == set(RULE_TYPES)
    assert set(grid_claims.RULE_TYPES) == {n for n, r in RULE_TYPES.items() if r.subject == "grid"}
    with pytest.raises(ValueError, match="two evaluators"):
        evaluates("paired")(lambda claim, evidence: {})
    with pytest.raises(ValueError, match="not declared"):
        evaluates("majority_vote")
    claim = {**PAIRED_CLAIM, "rule": {"type": "majority_vote", "side": "below"}}
    with pytest.raises(ValueError, match=r"claim c: unknown rule type 'majority_vote' \(known: "):
        evaluate_claims([claim], finals_frame({"adam": [1.0]}))
