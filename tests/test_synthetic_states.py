"""Figure 1's tasks judged by the settle rule (issue 21): each run's state on runs whose
behaviour is known, the record plan of a periodic problem (one phase, ranges over each
period), the state in finals.csv and the claims, and what Figure 1 draws."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from amsgrad_repro.analysis.claims import evaluate_claims
from amsgrad_repro.analysis.verdicts import INCONCLUSIVE, REPRODUCED, TOO_FEW_SEEDS
from amsgrad_repro.optimizers import BUILTINS
from amsgrad_repro.summaries.aggregate import aggregate_files
from amsgrad_repro.summaries.finals import finals_table, load_finals
from amsgrad_repro.synthetic import runner
from amsgrad_repro.synthetic.problems import ONLINE_PERIOD, PERIOD_RANGE
from amsgrad_repro.synthetic.runner import record_plan, run_task, write_run
from amsgrad_repro.synthetic.settle import CONVERGED, FAILED, UNSETTLED, check_point

ONLINE = {
    "kind": "synthetic",
    "problem": "online",
    "optimizers": ["adam", "amsgrad"],
    "hparams": {"lr": 0.5, "lr_schedule": "inv_sqrt", "beta1": 0.9, "beta2": 0.99},
    "steps": 2_000_000,
    "x1": 0.0,
    "record_points": 200,
}


def run(settings, seeds=(0,), names=None):  # noqa: ANN001, ANN201
    outcomes = run_task("t", settings, BUILTINS, list(seeds), names=names, threads=2)
    return {(o.optimizer, o.seed): o for o in outcomes}


def test_adam_settles_at_the_worst_point_and_amsgrad_creeps_towards_x_star():
    """Online problem, β2 = 0.99, α = 0.5/√t, 2·10^6 steps: Adam is held at +1 (x and
    R_t/t still: failed); AMSGrad is at −0.998 and still moving (R_t/t falls like 1/√t:
    unsettled, not failed)."""
    runs = run(ONLINE)
    adam, amsgrad = runs[("adam", 0)], runs[("amsgrad", 0)]
    assert adam.state == FAILED and adam.final_x > 0.99
    assert amsgrad.state == UNSETTLED and amsgrad.final_x < -0.99
    half = int(np.flatnonzero(amsgrad.steps == check_point(2_000_000, ONLINE_PERIOD))[0])
    assert amsgrad.avg_regret[half] - amsgrad.avg_regret[-1] > 0.01  # what keeps it moving
    # A step budget where Adam has not yet settled reads unsettled, never failed.
    early = run({**ONLINE, "steps": 20_000}, names=["adam"])[("adam", 0)]
    assert early.state == UNSETTLED


def test_a_run_held_at_x_star_is_converged():
    """Theorem 1's problem at β1 = 0, β2 = 0.999 (far above 1/(1 + C²)): Adam steadies
    within 10^-3 of −1 (measured −0.99942 at phase 2 of the period)."""
    settings = {
        **ONLINE,
        "problem": "theorem1",
        "C": 3.0,
        "steps": 200_000,
        "hparams": {"lr": 0.5, "lr_schedule": "inv_sqrt", "beta1": 0.0, "beta2": 0.999},
    }
    adam = run(settings, names=["adam"])[("adam", 0)]
    assert adam.state == CONVERGED and adam.final_x < -0.999


@pytest.mark.parametrize("steps, period", [(10_000_000, ONLINE_PERIOD), (20_000, 3), (5_000, 1)])
def test_record_plan_is_one_phase_and_holds_the_check_point(steps, period):
    plan = record_plan(steps, 1000, period)
    assert plan.points[-1] == steps and check_point(steps, period) in plan.points
    assert set(plan.points % period) == {steps % period}
    assert 100 <= plan.points.size <= 1002 and np.all(np.diff(plan.points) >= period)
    # each point's window is the `period` steps ending at it, disjoint, in order
    ends = np.append(plan.starts[1:], plan.windows.size) - 1
    np.testing.assert_array_equal(plan.windows[ends], plan.points)
    np.testing.assert_array_equal(
        plan.windows[plan.starts], np.maximum(plan.points - period + 1, 1)
    )
    assert np.all(np.diff(plan.windows) > 0)


def test_ranges_and_chunked_recording_equal_one_dense_run(monkeypatch):
    """The kernel in spans of a few windows (CHUNK = 256 steps) gives the same floats as
    one call (continuing from the saved state is the same run, bit for bit), and each
    point's range is the min and max over every step of its period (recorded densely)."""
    settings = {**ONLINE, "steps": 30_000, "optimizers": ["adam", "amsgrad", "padam"]}
    whole = run(settings, seeds=(0, 1))
    monkeypatch.setattr(runner, "CHUNK", 256)
    pieces = run(settings, seeds=(0, 1))
    dense = run({**settings, "record_points": 60_000}, seeds=(0, 1))
    for key, outcome in whole.items():
        np.testing.assert_array_equal(outcome.x, pieces[key].x)
        np.testing.assert_array_equal(outcome.avg_regret, pieces[key].avg_regret)
        assert outcome.final_x == pieces[key].final_x
        full = dense[key]  # every step at the phase of T; its windows cover every step
        steps, x = full.steps, full.x
        lookup = dict(zip(steps, x, strict=True))
        for i, t in enumerate(outcome.steps):
            assert outcome.x[i] == lookup[t]
            window = [full.ranges["x"][0][steps == t][0], full.ranges["x"][1][steps == t][0]]
            assert outcome.ranges["x"][0][i] == window[0] and outcome.ranges["x"][1][i] == window[1]


def test_padam_jumps_within_a_period_but_its_curve_is_one_phase():
    """Padam on the online problem: x jumps between −1 and a point far above within each
    period (the former figure's solid block); at one phase its curve is smooth, and the
    range within the period shows the jump."""
    settings = {**ONLINE, "steps": 200_000, "optimizers": ["padam"]}
    padam = run(settings)[("padam", 0)]
    low, high = padam.ranges["x"]
    late = padam.steps > 100_000
    assert np.all(high[late] - low[late] > 0.2)  # oscillates by more than 0.2 in a period
    assert np.abs(np.diff(padam.x[late])).max() < 0.01  # ... but not from point to point


def _write(tmp_path, settings, seeds):  # noqa: ANN001, ANN202
    files = []
    for (name, seed), outcome in run(settings, seeds=seeds).items():
        folder = tmp_path / "runs" / "t" / name / str(seed)
        write_run(folder, "t", settings, BUILTINS[name], outcome, {})
        files.append(folder / "run.json")
    return files


def test_state_in_run_json_finals_and_claims(tmp_path):
    files = _write(tmp_path, ONLINE, (0, 1, 2, 3, 4))
    record = json.loads(files[0].read_text())
    assert record["state"] in (FAILED, UNSETTLED) and record["settle"]["end"] == 2_000_000
    finals = load_finals(files)
    assert set(finals["state"]) == {FAILED, UNSETTLED}
    table = finals_table(finals).set_index(["optimizer", "statistic", "metric"])
    assert table.loc[("adam", "final", "x"), "state"] == "failed 5"
    assert table.loc[("amsgrad", "final", "x"), "state"] == "unsettled 5"
    assert table.loc[("amsgrad", "final", "x"), "unsettled"] == 5
    claims = [
        {"id": i, "source": "s", "statement": "s", "task": "t", "metric": "x", "rule": rule}
        for i, rule in (
            ("adam_up", {"type": "threshold", "optimizer": "adam", "side": "above", "value": 0.9}),
            (
                "ams_down",
                {"type": "threshold", "optimizer": "amsgrad", "side": "below", "value": -0.9},
            ),  # noqa: E501
            (
                "ams_up",
                {"type": "threshold", "optimizer": "amsgrad", "side": "above", "value": 0.9},
            ),  # noqa: E501
            (
                "pair",
                {"type": "compare", "candidate": "amsgrad", "baseline": "adam", "margin": 0.1},
            ),  # noqa: E501
        )
    ]
    rows = evaluate_claims(claims, finals).set_index("id")
    assert rows.loc["adam_up", "verdict"] == REPRODUCED
    assert rows.loc["adam_up", "effect"].endswith("every seed settled")
    # AMSGrad still moving: neither its success nor its failure, on either side of a claim
    for claim in ("ams_down", "ams_up", "pair"):
        assert rows.loc[claim, "verdict"] == INCONCLUSIVE, claim
        assert (
            "amsgrad 5 of 5 seeds unsettled at 2e+06 steps (counted neither way)"
            in (rows.loc[claim, "effect"])
        )
    # Fewer seeds run than a verdict needs: more seeds are wanted whatever the steps were.
    short = evaluate_claims(claims, finals, min_seeds=6).set_index("id")
    for claim in ("ams_down", "ams_up", "pair"):
        assert short.loc[claim, "verdict"] == TOO_FEW_SEEDS, claim


def test_figure1_draws_one_phase_with_period_bands_and_end_dots(tmp_path):
    """What the online panels plot: every point of a curve at t ≡ T (mod 101), the band
    the mean range over the period, an end dot filled for Adam (settled), hollow for
    AMSGrad (still moving)."""
    from amsgrad_repro.synthetic.figure import build_figure1, panel_curves

    settings = {**ONLINE, "optimizers": ["adam", "amsgrad", "padam"]}
    files = _write(tmp_path, settings, (0, 1))
    metrics = sorted((tmp_path / "runs").rglob("metrics.csv"))
    assert set(PERIOD_RANGE["x"]) <= set(pd.read_csv(metrics[0]).columns)
    table = aggregate_files(metrics, tmp_path / "t.csv")
    curves = panel_curves(table, "x")
    assert set(curves["step"] % ONLINE_PERIOD) == {2_000_000 % ONLINE_PERIOD}
    padam = curves[curves["optimizer"] == "padam"]
    assert (padam["hi"] - padam["lo"]).max() > 0.2 and (padam["lo"] <= padam["mean"]).all()
    records = [json.loads(f.read_text()) for f in files]
    fig = build_figure1({"t": table}, records)
    lines = [line for ax in fig.axes if "iterate" in ax.get_title() for line in ax.lines]
    drawn = [line for line in lines if len(line.get_xdata()) > 2]  # not the axhlines
    assert len(drawn) == 5  # adam, amsgrad; padam with adam and amsgrad as references
    for line in drawn:
        assert set(np.asarray(line.get_xdata()).astype(int) % 101) == {2_000_000 % 101}
    dots = [line.get_markerfacecolor() for line in lines if len(line.get_xdata()) == 1]
    states = {r["optimizer"]: r["state"] for r in records}
    assert states == {"adam": FAILED, "amsgrad": UNSETTLED, "padam": UNSETTLED}
    assert len(dots) == 3 and sum(face == "white" for face in dots) == 2


def test_a_run_still_moving_goes_on_to_max_steps_and_equals_one_longer_run(tmp_path):
    """With ``max_steps``, an optimizer unsettled at ``steps`` continues in doubling,
    phase-aligned rounds until it settles (Adam: failed, at +1; AMSGrad: converged at
    x* = -1, which 2·10^6 steps left unsettled) or the budget ends (still unsettled); the
    continued run is the uninterrupted run of the length it reached, bit for bit at every
    common point."""
    settings = {**ONLINE, "steps": 20_000, "max_steps": 5_000_000}
    runs = run(settings)
    adam, amsgrad = runs[("adam", 0)], runs[("amsgrad", 0)]
    ends = runner.task_rounds(20_000, 5_000_000, ONLINE_PERIOD)
    assert all(end % ONLINE_PERIOD == 20_000 % ONLINE_PERIOD for end in ends)
    assert adam.state == FAILED and adam.steps[-1] in ends[1:-1]
    assert amsgrad.state == CONVERGED and amsgrad.steps[-1] in ends[1:]
    short = run({**settings, "max_steps": 50_000}, names=["adam"])[("adam", 0)]
    assert short.state == UNSETTLED and short.steps[-1] == 49_997  # 50,000 at the phase
    for continued in (adam, amsgrad):
        alone = run({**ONLINE, "steps": int(continued.steps[-1])}, names=[continued.optimizer])
        alone = alone[(continued.optimizer, 0)]
        assert alone.final_x == continued.final_x
        assert alone.final_avg_regret == continued.final_avg_regret
        common, mine, theirs = np.intersect1d(continued.steps, alone.steps, return_indices=True)
        assert common.size > 50 and common[-1] == continued.steps[-1]
        np.testing.assert_array_equal(continued.x[mine], alone.x[theirs])
        low, high = continued.ranges["x"]
        np.testing.assert_array_equal(low[mine], alone.ranges["x"][0][theirs])
        np.testing.assert_array_equal(high[mine], alone.ranges["x"][1][theirs])
    write_run(tmp_path, "t", settings, BUILTINS["adam"], adam, {})
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["steps"] == adam.steps[-1] and record["max_steps"] == 5_000_000
    assert record["continued"] is True and record["settle"]["end"] == adam.steps[-1]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics["step"].iloc[-1] == adam.steps[-1]


def test_max_steps_below_steps_is_a_config_error():
    from amsgrad_repro.config import _check_synthetic_budgets
    from amsgrad_repro.settings_base import ConfigError

    bad = {"tasks": {"online": {**ONLINE, "max_steps": 1_000}}}
    with pytest.raises(ConfigError, match=r"tasks\.online\.max_steps \(1000\) is below"):
        _check_synthetic_budgets(bad)


def test_settled_runs_continued_to_different_lengths_pair(tmp_path):
    """Adam (failed) and AMSGrad (converged) both went on past ``steps`` until they
    settled (here both by 2.6·10^6 steps): their final x pair, also were one run longer
    than the other; a settled run short of its plan (the generic path) pairs only with
    one of its own length, and runs cut at ``steps`` while still moving pair with none."""
    from amsgrad_repro.summaries.finals import paired_differences

    settings = {**ONLINE, "steps": 20_000, "max_steps": 5_000_000}
    finals = load_finals(_write(tmp_path / "long", settings, (0, 1)))
    assert set(finals["state"]) == {FAILED, CONVERGED}
    assert finals["steps"].min() > 20_000
    diff = paired_differences(finals, "t", "x", "amsgrad", "adam")
    assert diff.size == 2 and np.all(diff < -1.9)
    amsgrad = finals["optimizer"] == "amsgrad"
    longer = finals.assign(steps=finals["steps"].where(~amsgrad, 2 * finals["steps"]))
    assert paired_differences(longer, "t", "x", "amsgrad", "adam").size == 2
    short_of_plan = longer.assign(planned_steps=10**7)
    assert paired_differences(short_of_plan, "t", "x", "amsgrad", "adam").size == 0
    cut = load_finals(_write(tmp_path / "cut", {**ONLINE, "steps": 20_000}, (0, 1)))
    assert set(cut["state"]) == {UNSETTLED}
    assert paired_differences(cut, "t", "x", "amsgrad", "adam").size == 0


def test_figure1_legend_says_where_a_continued_run_stopped(tmp_path):
    from amsgrad_repro.synthetic.figure import shortened_labels

    records = []
    for max_steps in (5_000_000, 50_000):
        settings = {**ONLINE, "steps": 20_000, "max_steps": max_steps}
        files = _write(tmp_path / str(max_steps), settings, (0,))
        records.append([json.loads(f.read_text()) for f in files])
    long_labels = shortened_labels(records[0], {"adam": "Adam"})
    assert long_labels["adam"] == "Adam, ran to 3e+06 steps (settled)"
    short_labels = shortened_labels(records[1], {})
    assert short_labels["adam"] == "adam, ran to 5e+04 steps (still moving at max_steps)"
