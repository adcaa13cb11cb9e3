"""Grids (issue 12): declarations, the one-call grid kernel against the single-run kernel,
the predictions from theory, and the claim rules on tables whose answer is known."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from amsgrad_repro.analysis.grid_claims import (
    GridData,
    drift,
    evaluate_claim,
    one_period,
    smallest_from_which,
    steady_state,
    theorem1_condition,
)
from amsgrad_repro.analysis.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    TOO_FEW_SEEDS,
)
from amsgrad_repro.config import ConfigError, load, resolve
from amsgrad_repro.optimizers import BUILTINS, catalogue, hparams
from amsgrad_repro.synthetic.grid_spec import RANGES, axis_values, check_grids, grid_spec
from amsgrad_repro.synthetic.grids import cell_summary, grid_runs, run_alone, run_grid
from amsgrad_repro.synthetic.kernel import gradient_sequence
from amsgrad_repro.synthetic.problems import DETERMINISTIC, PROBLEMS, problem_id

SEEDS = [0, 1, 2]


def declaration(**changes):
    """A small (β1, β2) grid on both paper problems."""
    grid = {
        "problems": ["online", "stochastic"],
        "optimizers": ["adam", "amsgrad", "adopt", "torch-amsgrad"],
        "hparams": {"lr": 0.5, "lr_schedule": "inv_sqrt"},
        "axes": {"beta1": {"values": [0.0, 0.9]}, "beta2": [{"values": [0.9, 0.999]}]},
        "steps": 4000,
        "max_steps": 4000,  # no continuation unless a test asks for it
        "x1": 0.0,
        "record_points": 6,
        "success_radius": 0.1,
        "figure": {"type": "heatmap", "x": "beta2", "y": "beta1", "curve": "beta1_sqrt_beta2"},
    }
    grid.update(changes)
    return grid


def spec_of(grid: dict, name: str = "g"):
    return grid_spec(name, grid, SEEDS, BUILTINS)


# --- declarations ----------------------------------------------------------------------


def test_axis_ranges_give_the_declared_values():
    assert axis_values("a", {"linspace": {"start": 2, "stop": 4, "num": 3}}) == (2.0, 3.0, 4.0)
    # 10.0**e of exact exponents: one rounding of pow, ≤ 1 ulp (measured exact)
    assert axis_values("a", {"logspace": {"start": -2, "stop": 0, "num": 3}}) == pytest.approx(
        (0.01, 0.1, 1.0), rel=1e-15
    )
    # Theorem 1's map: beta2 = 1 - 10^(-i/12), i = 1..20.
    theorem = axis_values(
        "a", {"one_minus_logspace": {"start": -1, "stop": -20, "num": 20, "per": 12}}
    )
    expected = [1 - 10 ** (-i / 12) for i in range(1, 21)]
    # the same formula, exponents from linspace instead of i/12: ≤ 2 ulps of 1 (measured 0)
    np.testing.assert_allclose(theorem, expected, rtol=0, atol=1e-15)
    joined = axis_values("a", [{"values": [2.5]}, {"linspace": {"start": 3, "stop": 5, "num": 3}}])
    assert joined == (2.5, 3.0, 4.0, 5.0)
    with pytest.raises(ConfigError, match=r"a\[1\]: the axis repeats"):
        axis_values("a[1]", [{"values": [1.0]}, {"values": [1.0]}])


def test_schema_knows_exactly_the_ranges_the_code_makes(repo_root):
    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    piece = schema["$defs"]["grid_axis_piece"]["properties"]
    assert set(piece) == {"values", *RANGES}


def test_default_grids_are_the_issues(repo_root):
    grids = check_grids(load(repo_root / "config.yaml", {"scale": "quick"}))
    adopt, beta, theorem = grids["adopt_problem"], grids["beta_map"], grids["theorem1_map"]
    assert adopt.axis("k").values == (10.0, 50.0) and adopt.steps == 2_000_000
    assert len(adopt.seeds) >= 10 and {
        "adam",
        "amsgrad",
        "torch-amsgrad",
        "optax-amsgrad",
        "adopt",
    } <= set(adopt.optimizers)
    step = adopt.settings["adam"]
    assert (step.lr, step.lr_schedule, step.lr_decay) == (0.01, "inv_sqrt_affine", 0.01)
    # ADOPT's figure varies beta2; the first setting (0.999) is one of its columns.
    assert adopt.axis("beta2").values == (0.1, 0.5, 0.999)
    # The continuation's budgets: 10^8 deterministic; a stochastic problem's is its steps
    # (no continuation by default, grid_spec.DEFAULT_MAX_STEPS says why).
    assert adopt.max_steps == {"adopt": adopt.steps}
    assert beta.max_steps == {"online": 10**8, "stochastic": beta.steps}
    assert set(beta.problems) == {"online", "stochastic"}
    assert {"adam", "amsgrad", "adopt"} <= set(beta.optimizers)
    b1, b2 = beta.axis("beta1").values, beta.axis("beta2").values
    assert len(b1) >= 16 and len(b2) >= 16 and 0.9 in b1 and min(b1) == 0 and max(b1) == 0.99
    # 1 − (1 − 10^-5) cancels: ulp(1)/10^-5 = 2.2e-11 relative; 1 − 0.9 is off by ≤ 1 ulp
    assert 1 - max(b2) == pytest.approx(1e-5, rel=1e-10)
    assert 1 - min(b2) == pytest.approx(0.1, rel=1e-15)
    shi = [1 - 10 ** (-i / 12) for i in range(1, 21)]
    on_axis = np.isclose(np.array(theorem.axis("beta2").values)[:, None], shi, rtol=0, atol=1e-15)
    assert on_axis.any(axis=0).all()  # the same formula: ≤ 2 ulps of 1, as above
    assert set(range(3, 32)) <= set(theorem.axis("C").values)
    assert all(theorem.settings[o].beta1 == 0.0 for o in theorem.optimizers)
    # The smoke versions are tiny.
    smoke = check_grids(load(repo_root / "config.yaml", {"scale": "smoke"}))
    assert sum(g.run_count() * g.steps for g in smoke.values()) < 5e6


@pytest.mark.parametrize(
    "change, message",
    [
        ({"axes": {"beta3": {"values": [0.1]}}}, r"grids\.g\.axes\.beta3: adam has no tunable"),
        ({"axes": {"eps": {"values": [0.1]}}}, r"grids\.g\.axes\.eps: adam has no tunable"),
        ({"axes": {"beta2": {"values": [0.5, 1.0]}}}, r"grids\.g\.axes\.beta2\[1\]: must be < 1"),
        ({"axes": {"k": {"values": [10]}}}, r"grids\.g\.axes\.k: k is no parameter of problem"),
        ({"optimizers": ["adam", "adamw"]}, r"grids\.g\.optimizers\[1\]: adamw has no compiled"),
        ({"optimizers": ["adamm"]}, r"grids\.g\.optimizers\[0\]: unknown optimizer 'adamm'"),
        ({"hparams": {"betas": [0.9, 0.9]}}, r"grids\.g\.hparams\.betas: none of this grid"),
        ({"hparams": {"lr": -1.0}}, r"grids\.g\.hparams\.lr: must be > 0"),
        ({"overrides": {"yogi": {"lr": 1.0}}}, r"grids\.g\.overrides\.yogi: 'yogi' is not among"),
        ({"problems": ["theorem1"]}, r"grids\.g: give C"),
        ({"C": 3.0}, r"grids\.g\.C: no problem of this grid reads it"),
        ({"figure": {"type": "heatmap", "x": "beta2", "y": "lr"}}, r"figure\.y: 'lr' is not an"),
        (
            {"figure": {"type": "heatmap", "x": "beta2", "y": "beta1", "curve": "x"}},
            "unknown curve",
        ),
        ({"max_steps": 3999}, r"grids\.g\.max_steps: 3999 is below steps \(4000\)"),
        ({"seeds": [1, 1]}, r"grids\.g\.seeds: duplicate seeds"),
        ({"hparams": {"beta1": 0.5}}, r"grids\.g\.hparams\.beta1: beta1 is an axis"),
        ({"overrides": {"adam": {"beta2": 0.5}}}, r"overrides\.adam\.beta2: beta2 is an axis"),
    ],
)
def test_a_mistyped_grid_names_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        spec_of(declaration(**change))


def test_problem_parameter_axes_are_checked():
    grid = declaration(
        problems=["theorem1"],
        axes={"C": {"values": [2.0, 3.0]}},
        figure={"type": "quartiles", "panels": "C"},
        record_points=10,
    )
    with pytest.raises(ConfigError, match=r"grids\.g\.axes\.C\[0\]: C must be > 2"):
        spec_of(grid)


def test_a_bad_grid_is_a_start_up_error_of_the_whole_configuration(repo_root):
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    bad = copy.deepcopy(raw)
    bad["grids"]["beta_map"]["axes"]["beta1"] = {
        "values": [0.5],
        "linspace": {"start": 0, "stop": 1, "num": 2},
    }
    with pytest.raises(ConfigError, match=r"grids\.beta_map\.axes\.beta1"):
        resolve(bad)
    bad = copy.deepcopy(raw)
    bad["grids"]["beta_map"]["optimizers"] = ["adam", "lion"]
    with pytest.raises(
        ConfigError, match=r"grids\.beta_map\.optimizers\[1\]: lion has no compiled"
    ):
        resolve(bad)


# --- the grid kernel -------------------------------------------------------------------


def test_deterministic_problems_do_not_depend_on_the_seed():
    for name in PROBLEMS:
        a = gradient_sequence(problem_id(name), 10.0, 1, 5000)
        b = gradient_sequence(problem_id(name), 10.0, 2, 5000)
        assert np.array_equal(a, b) == (name in DETERMINISTIC), name


def test_grid_equals_the_single_run_kernel_cell_by_cell():
    """Every row of a grid computed in one parallel call is bit for bit what the
    single-run kernel gives for that cell, seed and optimizer alone."""
    grid = spec_of(declaration())
    result = run_grid(grid, BUILTINS, threads=2)
    table = result.table
    runs = grid_runs(grid)
    assert len(table) == len(runs) == grid.run_count() == 4 * 4 * 1 + 4 * 4 * 3
    assert set(table.loc[table["problem"] == "online", "seed"]) == {0}
    steps = [c for c in table.columns if c.startswith("x_t")]
    record = np.array([int(c[3:]) for c in steps])
    for row, run in zip(table.itertuples(index=False), runs, strict=True):
        final_x, final_regret, xs = run_alone(grid, run, BUILTINS[run.optimizer], record)
        assert (row.problem, row.optimizer, row.seed) == (run.problem, run.optimizer, run.seed)
        assert row.final_x == final_x and row.final_avg_regret == final_regret
        np.testing.assert_array_equal([getattr(row, c) for c in steps], xs)
    # The order of computation does not matter: one thread gives the same table.
    again = run_grid(grid, BUILTINS, threads=1).table
    pd.testing.assert_frame_equal(table, again)


def test_grid_table_holds_each_cells_settings():
    grid = spec_of(declaration())
    table = run_grid(grid, BUILTINS, threads=2).table
    for row in table.itertuples(index=False):
        settings = json.loads(row.hparams)
        assert (settings["beta1"], settings["beta2"]) == (row.beta1, row.beta2)
        assert settings["lr"] == 0.5
    torch_form = json.loads(table.loc[table["optimizer"] == "torch-amsgrad", "hparams"].iloc[0])
    assert torch_form["eps"] == 1e-8 and torch_form["weight_decay"] == 0.0
    summary = cell_summary(table, grid)
    assert len(summary) == 2 * 4 * 4 and set(summary["seeds"]) == {1, 3}
    assert summary["share_within"].between(0, 1).all()


def test_a_fixed_problem_parameter_is_a_column():
    grid = spec_of(declaration(problems=["theorem1"], C=3.0, steps=300))
    table = run_grid(grid, BUILTINS, threads=1).table
    assert (table["C"] == 3.0).all() and set(table["seed"]) == {0}


# --- predictions from theory ------------------------------------------------------------


def test_steady_state_is_the_long_run_of_the_ema():
    g = one_period("online")
    beta = 0.9
    e = 0.0
    for _ in range(300):  # 300 periods: the start is forgotten
        trace = []
        for value in g:
            e = beta * e + (1 - beta) * value
            trace.append(e)
    # Closed form: a dot product of P = 101 terms, Σ|β^i·g| ≤ 1010 + 10/(1 − β) = 1110,
    # off by ≤ P·u·1110 = 1.2e-11 in any summation order (OpenBLAS's kernel), times
    # (1 − β)/(1 − β^P) ≈ 0.1; the iteration contracts, ≤ u·max|e|/(1 − β) = 1e-13. Worst
    # case 1.4e-12 absolute (measured 4.3e-14, |e| up to 92); 1e-11 leaves 7× that.
    np.testing.assert_allclose(steady_state(g, beta), trace, rtol=0, atol=1e-11)
    assert one_period("theorem1", 5.0).tolist() == [5.0, -1.0, -1.0]


def test_drift_agrees_with_the_known_cases():
    online = one_period("online")
    # Figure 1: with (0.9, 0.99) Adam drifts to +1 and AMSGrad to -1.
    assert drift(online, 0.9, 0.99, "ema") < 0 < drift(online, 0.9, 0.99, "max")
    # AMSGrad's steady state divides the whole period by one constant, so its drift has the
    # sign of the period's gradient sum (+10): towards x* for every beta.
    for b1, b2 in [(0.0, 0.5), (0.99, 0.9), (0.5, 0.99999)]:
        assert drift(online, b1, b2, "max") > 0
    # Theorem 1's setting: beta1 = 0, beta2 = 1/(1+C^2) drifts to +1.
    for c in (3.0, 10.0):
        assert drift(one_period("theorem1", c), 0.0, 1 / (1 + c**2), "ema") < 0


def test_theorem1_condition_needs_beta1_zero():
    cells = pd.DataFrame(
        {
            "C": [3.0, 3.0, 2.5],
            "hparams": [json.dumps({"beta1": 0.0, "beta2": b}) for b in (0.05, 0.2, 0.1)],
        }
    )
    assert theorem1_condition("theorem1", cells).tolist() == [True, False, True]
    cells["hparams"] = json.dumps({"beta1": 0.9, "beta2": 0.05})
    with pytest.raises(ValueError, match="beta1 = 0"):
        theorem1_condition("theorem1", cells)


# --- claim rules on constructed tables ---------------------------------------------------


def state_of(x: float, moving: bool) -> str:
    """A constructed run's state: settled ones converged or failed by the grids' radius."""
    return "unsettled" if moving else "converged" if abs(x + 1.0) < 0.1 else "failed"


def constructed(values: dict[tuple[float, float], list[float]], problem="stochastic", unsettled=()):
    """A grid table of adam on one problem: (beta1, beta2) -> final x per seed; the cells
    in ``unsettled`` still moving at the end (every seed)."""
    cells = sorted(values)
    rows = []
    for index, (b1, b2) in enumerate(cells):
        settings = BUILTINS["adam"].resolve(("", {"beta1": b1, "beta2": b2}))
        for seed, x in enumerate(values[(b1, b2)]):
            rows.append(
                {
                    "grid": "g",
                    "problem": problem,
                    "optimizer": "adam",
                    "cell": index,
                    "beta1": b1,
                    "beta2": b2,
                    "seed": seed,
                    "final_x": x,
                    "final_avg_regret": 0.0,
                    "status": "completed",
                    "state": state_of(x, (b1, b2) in unsettled),
                    "steps_run": 4000,
                    "hparams": json.dumps(hparams.as_record(settings)),
                }
            )
    b1s = sorted({b1 for b1, _ in cells})
    b2s = sorted({b2 for _, b2 in cells})
    grid = declaration(
        problems=[problem],
        optimizers=["adam"],
        axes={"beta1": {"values": b1s}, "beta2": {"values": b2s}},
    )
    return {"g": GridData(spec_of(grid), pd.DataFrame(rows))}


def claim(rule: dict, metric="x"):
    return {
        "id": "c",
        "source": "s",
        "statement": "t",
        "task": "g",
        "metric": metric,
        "rule": {"problem": "stochastic", "optimizer": "adam", **rule},
    }


THRESHOLD = {
    "type": "grid_threshold",
    "where": {"beta1": 0.9, "beta2": 0.99},
    "side": "below",
    "value": -0.9,
}


@pytest.mark.parametrize(
    "seeds, verdict",
    [
        ([-0.99, -0.98, -1.0, -0.97, -0.99, -0.98], REPRODUCED),
        ([0.99, 0.98, 1.0, 0.97, 0.99, 0.98], NOT_REPRODUCED),
        ([-1.0, -0.99, -0.4, -1.0, -0.98, -0.5], INCONCLUSIVE),
    ],
)
def test_grid_threshold_judges_one_cell(seeds, verdict):
    grids = constructed({(0.9, 0.99): seeds, (0.9, 0.9): [1.0] * len(seeds)})
    row = evaluate_claim(claim(THRESHOLD), grids)
    assert row["verdict"] == verdict and row["n_seeds"] == len(seeds)
    assert row["estimate"] == pytest.approx(np.mean(seeds), rel=1e-12)  # a mean of 6: ≤ 6u
    assert "beta1=0.9,beta2=0.99" in row["effect"]


def test_grid_claims_of_a_grid_that_did_not_run_are_not_run():
    assert evaluate_claim(claim(THRESHOLD), {})["verdict"] == NOT_RUN


def test_grid_claim_errors_name_the_claim():
    grids = constructed({(0.9, 0.99): [0.0], (0.9, 0.9): [0.0]})
    with pytest.raises(ValueError, match="claim c: .*selects 2 cells"):
        evaluate_claim(claim({**THRESHOLD, "where": {"beta1": 0.9}}), grids)
    with pytest.raises(ValueError, match="claim c: .*no cell"):
        evaluate_claim(claim({**THRESHOLD, "where": {"beta1": 0.5, "beta2": 0.99}}), grids)


def test_smallest_value_from_which_every_cell_reaches():
    axis = np.array([0.9, 0.99, 0.999, 0.9999])
    reaches = np.array(
        [
            [False, False, True, True],
            [True, False, True, True],
            [True, True, True, False],
            [True, True, True, True],
        ]
    )
    assert smallest_from_which(axis, reaches).tolist() == [0.999, 0.999, np.inf, 0.9]


BOUNDARY = {"type": "grid_boundary", "where": {"beta1": 0.9}, "axis": "beta2"}


def test_grid_boundary_finds_the_smallest_beta2_with_its_seed_interval():
    converged, failed = [-1.0, -0.99, -0.98, -1.0, -0.97], [1.0, 0.9, 0.95, 1.0, 0.92]
    grids = constructed(
        {
            (0.9, 0.9): failed,
            (0.9, 0.99): converged,
            (0.9, 0.999): converged,
            (0.0, 0.9): converged,
            (0.0, 0.99): failed,
            (0.0, 0.999): failed,
        }
    )
    row = evaluate_claim(claim(BOUNDARY), grids)
    assert row["verdict"] == REPRODUCED
    assert (row["estimate"], row["lo"], row["hi"]) == (0.99, 0.99, 0.99)
    assert "0.9, fails" in row["effect"]
    # Nothing converges at the top of the axis: no such beta2.
    none = constructed({(0.9, 0.9): converged, (0.9, 0.99): failed})
    row = evaluate_claim(claim(BOUNDARY), none)
    assert row["verdict"] == NOT_REPRODUCED and row["estimate"] == np.inf
    # At the top, half the seeds end at x* and half at +1: it depends on the seeds drawn.
    split = constructed({(0.9, 0.9): failed, (0.9, 0.99): [-1.0, -1.0, 0.6, -1.0, -1.0]})
    assert evaluate_claim(claim(BOUNDARY), split)["verdict"] == INCONCLUSIVE


def test_grid_claims_on_a_stochastic_problem_need_the_minimum_seeds():
    """Below ``analysis.min_seeds`` the resampled interval decides nothing, as for the
    claims about runs; at that count the same table gets its verdict."""
    three = constructed({(0.9, 0.9): [1.0, 0.9, 0.95], (0.9, 0.99): [-1.0, -0.99, -0.98]})
    assert evaluate_claim(claim(BOUNDARY), three)["verdict"] == TOO_FEW_SEEDS
    assert evaluate_claim(claim(BOUNDARY), three, min_seeds=3)["verdict"] == REPRODUCED
    cells = {(0.9, 0.99): [-0.99, -0.98, -1.0], (0.9, 0.9): [1.0] * 3}
    assert evaluate_claim(claim(THRESHOLD), constructed(cells))["verdict"] == TOO_FEW_SEEDS


def agreement(cells="all", value=0.9, min_cells=1):
    return {
        "type": "grid_agreement",
        "prediction": "theorem1_condition",
        "cells": cells,
        "side": "above",
        "value": value,
        "min_cells": min_cells,
        "problem": "theorem1",
    }


def theorem1_grids(outcomes: dict[tuple[float, float], float], unsettled=()):
    """Adam on theorem1 (beta1 = 0), one seed: (C, beta2) -> final x; the cells in
    ``unsettled`` still moving."""
    rows = []
    for index, ((c, b2), x) in enumerate(sorted(outcomes.items())):
        settings = BUILTINS["adam"].resolve(("", {"beta1": 0.0, "beta2": b2}))
        rows.append(
            {
                "grid": "g",
                "problem": "theorem1",
                "optimizer": "adam",
                "cell": index,
                "beta2": b2,
                "C": c,
                "seed": 0,
                "final_x": x,
                "final_avg_regret": 0.0,
                "status": "completed",
                "state": state_of(x, (c, b2) in unsettled),
                "steps_run": 4000,
                "hparams": json.dumps(hparams.as_record(settings)),
            }
        )
    grid = declaration(
        problems=["theorem1"],
        optimizers=["adam"],
        hparams={"beta1": 0.0},
        axes={
            "beta2": {"values": sorted({b for _, b in outcomes})},
            "C": {"values": sorted({c for c, _ in outcomes})},
        },
        figure={"type": "heatmap", "x": "C", "y": "beta2"},
    )
    return {"g": GridData(spec_of(grid), pd.DataFrame(rows))}


def test_grid_agreement_counts_the_cells_that_agree():
    # C = 3: 1/(1+C^2) = 0.1. Predicted to fail: beta2 = 0.01, 0.05 (and 0.1 itself).
    outcomes = {
        (3.0, 0.01): 1.0,
        (3.0, 0.05): 1.0,
        (3.0, 0.1): -1.0,
        (3.0, 0.5): -1.0,
        (10.0, 0.01): 1.0,
        (10.0, 0.05): 1.0,
        (10.0, 0.1): 1.0,
        (10.0, 0.5): -1.0,
    }
    grids = theorem1_grids(outcomes)
    everywhere = evaluate_claim(claim(agreement("all")), grids)
    # Disagreements: (3, 0.1) predicted to fail but reached; (10, 0.01/0.05/0.1) failed but
    # are not predicted to (1/(1+100) < 0.01).
    assert everywhere["estimate"] == pytest.approx(4 / 8, rel=1e-15)  # a share of 8: exact
    assert everywhere["verdict"] == NOT_REPRODUCED
    assert "(8 of 8; 3 predicted to fail)" in everywhere["effect"]
    region = evaluate_claim(claim(agreement("predicted_failures")), grids)
    assert region["estimate"] == pytest.approx(2 / 3, rel=1e-15)  # a share of 3: ≤ 1 ulp
    assert region["verdict"] == NOT_REPRODUCED
    few = evaluate_claim(claim(agreement("predicted_failures", min_cells=5)), grids)
    assert few["verdict"] == INCONCLUSIVE and np.isnan(few["estimate"])
    agreeing = {k: (1.0 if k[1] <= 1 / (1 + k[0] ** 2) else -1.0) for k in outcomes}
    row = evaluate_claim(claim(agreement("all")), theorem1_grids(agreeing))
    assert row["verdict"] == REPRODUCED and row["estimate"] == 1.0


def test_every_shipped_grid_claim_evaluates_on_a_smoke_grid(repo_root):
    """The claims of workflow/claims.yaml about grids are well formed against the grids
    they name (smoke scale: tiny runs, any verdict)."""
    from amsgrad_repro.analysis.tables import load_claims

    settings = load(repo_root / "config.yaml", {"scale": "smoke"})
    specs = check_grids(settings)
    grids = {
        name: GridData(spec, run_grid(spec, catalogue(), threads=2).table)
        for name, spec in specs.items()
    }
    claims = [c for c in load_claims(repo_root / "workflow/claims.yaml") if c["task"] in grids]
    assert len(claims) >= 7
    for item in claims:
        row = evaluate_claim(item, grids)
        assert row["verdict"] in {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE}, row


def test_written_table_reads_back_exactly(tmp_path):
    from amsgrad_repro.synthetic.grids import read_table, write_grid

    theorem = {"one_minus_logspace": {"start": -1, "stop": -20, "num": 20, "per": 12}}
    grid = spec_of(
        declaration(axes={"beta1": {"values": [0.9]}, "beta2": theorem}, steps=50, max_steps=50)
    )
    result = run_grid(grid, BUILTINS, threads=1)
    write_grid(tmp_path, grid, result, declaration(), BUILTINS)
    table = read_table(tmp_path / "table.csv")
    assert set(table["beta2"]) == set(grid.axis("beta2").values)
    pd.testing.assert_frame_equal(table, result.table, check_dtype=False)
    record = json.loads((tmp_path / "grid.json").read_text())
    assert record["seeds_run"] == {"online": [0], "stochastic": SEEDS}
    assert record["engines"]["torch-amsgrad"] == "kernel (native twin: amsgrad)"
    assert record["engines"]["adam"] == "kernel"
    assert record["timing"]["total_steps"] == grid.run_count() * 50


def test_curve_positions_fall_in_the_right_cells():
    from amsgrad_repro.synthetic.grid_figures import positions

    beta2 = axis_values("a", {"one_minus_logspace": {"start": -1, "stop": -5, "num": 17}})
    # np.interp at its own knots returns the knots' values exactly (measured)
    np.testing.assert_array_equal(positions(beta2, np.array(beta2)), np.arange(17) + 0.5)
    # Halfway in log(1 - beta2) between the first two cells, and off the axis.
    between = 1 - 10**-1.125
    # 1 − (1 − 10^-1.125) cancels (ulp(1)/0.075 = 3e-15 relative), log10 of it over a cell
    # 0.25 wide: ≤ 1e-14 (measured 4.4e-16)
    assert positions(beta2, np.array([between]))[0] == pytest.approx(1.0, abs=1e-13)
    assert np.isnan(positions(beta2, np.array([0.5, 0.999999]))).all()
    # Declared out of order, placed by value (the heatmaps sort their axes).
    assert positions([0.9, 0.0, 0.5], np.array([0.5]))[0] == 1.5  # a knot: exact


# --- settled or still moving (issue 21) ---------------------------------------------------


def test_continuation_equals_one_uninterrupted_run_cell_by_cell():
    """Cells unsettled at ``steps`` continue from their saved kernel state in doubling
    rounds; each row is bit for bit the single-run kernel run alone for the steps that row
    ran, settled cells stop, and the table says how far each went."""
    grid = spec_of(declaration(steps=1000, max_steps=8000, problems=["online", "stochastic"]))
    table = run_grid(grid, BUILTINS, threads=2).table
    assert set(table["steps_run"]) <= {1000, 2000, 4000, 8000}
    assert (table["steps_run"] > 1000).any()  # some cells needed more (else no test)
    # Only unsettled cells go on: every cell that stopped early is settled there.
    early = table[table["steps_run"] < 8000]
    assert (early["state"] != "unsettled").all()
    assert set(table["state"]) <= {"converged", "failed", "unsettled"}
    steps = [c for c in table.columns if c.startswith("x_t")]
    record = np.array([int(c[3:]) for c in steps])
    for row, run in zip(table.itertuples(index=False), grid_runs(grid), strict=True):
        alone = dataclasses.replace(grid, steps=int(row.steps_run))
        final_x, final_regret, xs = run_alone(alone, run, BUILTINS[run.optimizer], record)
        assert row.final_x == final_x and row.final_avg_regret == final_regret
        ran = record <= row.steps_run
        np.testing.assert_array_equal(np.array([getattr(row, c) for c in steps])[ran], xs[ran])
        assert np.isnan(np.array([getattr(row, c) for c in steps])[~ran]).all()
    # The seeds of a cell run as far as each other (a cell continues whole).
    assert (table.groupby(["problem", "optimizer", "cell"])["steps_run"].nunique() == 1).all()


def test_claims_count_only_settled_cells_and_never_call_unsettled_ones_failures():
    converged, failed = [-1.0, -0.99, -0.98, -1.0, -0.97], [1.0, 0.9, 0.95, 1.0, 0.92]
    moving = [-0.5, -0.6, -0.4, -0.55, -0.5]
    values = {(0.9, 0.9): failed, (0.9, 0.99): moving, (0.9, 0.999): converged}
    values |= {(0.0, 0.9): failed, (0.0, 0.99): failed, (0.0, 0.999): failed}
    grids = constructed(values, unsettled={(0.9, 0.99)})
    # The boundary lies between 0.9 and 0.999; the unsettled 0.99 beside it is named.
    row = evaluate_claim(claim(BOUNDARY), grids)
    assert row["verdict"] == REPRODUCED and row["estimate"] == 0.999
    assert "1 of 3 cells unsettled at 4e+03 steps" in row["effect"]
    assert "boundary between the beta2 values 0.9 and 0.999: 1 cell beside it" in row["effect"]
    # No settled cell converges, but the top of the axis is still moving: the boundary may
    # lie there, so "no such beta2" would claim more than the runs show.
    top = {(0.9, 0.9): failed, (0.9, 0.99): failed, (0.9, 0.999): moving}
    row = evaluate_claim(claim(BOUNDARY), constructed(top, unsettled={(0.9, 0.999)}))
    assert row["verdict"] == INCONCLUSIVE and row["estimate"] == np.inf
    assert "boundary between the beta2 values 0.99 and inf: 1 cell beside it" in row["effect"]
    # Settled, the same top cell decides it.
    assert evaluate_claim(claim(BOUNDARY), constructed(top))["verdict"] == NOT_REPRODUCED
    # A one-cell threshold on an unsettled cell is inconclusive, whichever side.
    for side, value in (("below", -0.3), ("above", -0.3)):
        rule = dict(THRESHOLD, side=side, value=value)
        row = evaluate_claim(claim(rule), grids)
        assert row["verdict"] == INCONCLUSIVE and "5 of 5 seeds unsettled" in row["effect"]
    # Agreement: an unsettled cell predicted to converge is not a failure.
    outcomes = {(3.0, 0.01): 1.0, (3.0, 0.5): -1.0, (10.0, 0.005): 1.0, (10.0, 0.5): 0.2}
    row = evaluate_claim(claim(agreement("all")), theorem1_grids(outcomes, {(10.0, 0.5)}))
    assert row["verdict"] == REPRODUCED and row["estimate"] == 1.0
    assert "(3 of 4;" in row["effect"] and "1 of 4 cells unsettled" in row["effect"]
    # Settled, the same cell counts against the prediction, and is listed.
    row = evaluate_claim(claim(agreement("all")), theorem1_grids(outcomes))
    assert row["estimate"] == 0.75 and "[beta2=0.5,C=10.0]" in row["effect"]
