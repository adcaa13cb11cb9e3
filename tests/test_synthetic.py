"""The compiled 1-D kernel against the tensor updates, the generic path, and the problems."""

from __future__ import annotations

import numpy as np
import pytest

from amsgrad_repro.optimizers import BUILTINS, catalogue, scalar_form, task_settings
from amsgrad_repro.synthetic.kernel import gradient_sequence, record_schedule
from amsgrad_repro.synthetic.problems import PROBLEMS, problem_id
from amsgrad_repro.synthetic.runner import run_task

COMPILED = sorted(n for n, s in BUILTINS.items() if scalar_form(s, s.resolve()) is not None)
LION = {
    "lion": {
        "class": "pytorch_optimizer:Lion",
        "elementwise": True,
        "hparams": {"lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.0},
    }
}


# The kernel and the tensor updates compute the same algebra in float64, in another order
# of roundings (u = 1.1e-16 each). Measured over 12,000 steps of every compiled optimizer
# on every problem (and 10,000 of each option): x differs by at most 3.1e-15 (14 ulps of
# |x| ≤ 1), the average regret by 7.1e-15 absolute (values up to 1e3) and 1.5e-13
# relative. X_ATOL = 1e-12 (4500 ulps of 1) admits 300× that; a real difference fails it
# (tried: 1 − β2 off by 1e-9 in the kernel's v moved x by 4e-8 to 1.1e-6 over 12,000
# steps of adam, amsgrad, adamnc and torch-adam; the former atol of 1e-6 let 7 of the 8
# cases through).
X_ATOL = 1e-12


def task(problem, steps, optimizers, **extra):
    settings = {
        "kind": "synthetic",
        "problem": problem,
        "optimizers": optimizers,
        "hparams": {"lr": 0.5, "lr_schedule": "inv_sqrt", "beta1": 0.9, "beta2": 0.99},
        "steps": steps,
        "x1": 0.0,
        "record_points": 300,
        "C": 3.0,
        "k": 10.0,
    }
    settings.update(extra)
    return settings


def outcomes(settings, engine, seeds=(7,), specs=BUILTINS):
    runs = run_task("t", settings, specs, list(seeds), engine=engine, threads=2)
    return {(r.optimizer, r.seed): r for r in runs}


def test_every_successor_and_paper_form_has_a_compiled_step():
    expected = {
        "adam",
        "amsgrad",
        "adamnc",
        "optax-amsgrad",
        "torch-adam",
        "torch-amsgrad",
        "adopt",
        "adopt-unclipped",
        "adabelief",
        "yogi",
        "adabound",
        "amsbound",
        "padam",
    }
    assert expected <= set(COMPILED)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_compiled_step_equals_the_tensor_update_for_every_optimizer(problem):
    """10^4+ steps of every compiled optimizer against its tensor update (the native
    family's functional update, or the torch.optim class of a twin) on the same draws."""
    settings = task(problem, 12_000, COMPILED)
    if problem == "theorem1":
        settings["hparams"] = {"lr": 0.5, "lr_schedule": "inv_sqrt", "beta1": 0.0, "beta2": 0.1}
    fast = outcomes(settings, "kernel")
    slow = outcomes(settings, "generic")
    for key, run in fast.items():
        assert run.engine.startswith("kernel") and slow[key].engine == "generic"
        np.testing.assert_array_equal(run.steps, slow[key].steps)
        np.testing.assert_allclose(run.x, slow[key].x, rtol=0, atol=X_ATOL, err_msg=str(key))
        np.testing.assert_allclose(
            run.avg_regret, slow[key].avg_regret, rtol=X_ATOL, atol=X_ATOL, err_msg=str(key)
        )
        assert run.final_x == pytest.approx(slow[key].final_x, abs=X_ATOL)


@pytest.mark.parametrize(
    "name, hparams",
    [
        ("amsgrad", {"eps": 1e-3, "lr_schedule": "constant", "lr": 0.1}),
        ("amsgrad", {"bias_correction": True}),
        ("adam", {"beta1_schedule": "exp_decay", "beta1_decay": 0.999}),
        ("adamnc", {"beta1_schedule": "inv_t"}),
        ("adam", {"lr_schedule": "inv_sqrt_affine", "lr": 0.01, "lr_decay": 0.01}),
        ("amsgrad", {"lr_schedule": "warmup_cosine", "lr_warmup": 0.1, "lr_final": 0.1}),
        ("adopt", {"lr_schedule": "warmup_linear", "lr_warmup": 0.02, "lr_horizon": 5000}),
        ("adopt-unclipped", {"lr_schedule": "inv_sqrt_affine", "lr": 0.01, "lr_decay": 0.01}),
        ("yogi", {"bias_correction": True}),
        ("amsbound", {"bias_correction": True, "eps": 1e-8, "divide_by_sqrt_t": False}),
        ("padam", {"bias_correction": True, "eps": 1e-8, "amsgrad": False}),
    ],
)
def test_compiled_step_equals_the_tensor_update_for_every_option(name, hparams):
    settings = task("stochastic", 10_000, [name], overrides={name: hparams})
    fast = outcomes(settings, "kernel")[(name, 7)]
    slow = outcomes(settings, "generic")[(name, 7)]
    np.testing.assert_allclose(fast.x, slow.x, rtol=0, atol=X_ATOL)


def test_batch_of_runs_equals_each_run_alone():
    """Seeds and optimizers computed together in parallel give what each gives alone."""
    settings = task("stochastic", 20_000, ["adam", "amsgrad", "adopt", "padam"])
    together = outcomes(settings, "kernel", seeds=range(6))
    for key, run in together.items():
        alone = run_task(
            "t", settings, BUILTINS, [key[1]], names=[key[0]], engine="kernel", threads=1
        )[0]
        np.testing.assert_array_equal(run.x, alone.x)
        assert run.final_avg_regret == alone.final_avg_regret


def test_generic_path_runs_a_plugin_for_every_seed_at_once():
    specs = catalogue(LION)
    settings = task("online", 3_000, ["lion"])
    runs = outcomes(settings, "auto", seeds=(0, 1, 2), specs=specs)
    assert {r.engine for r in runs.values()} == {"generic"}
    # The online problem is deterministic: every seed ends at the same point.
    assert len({round(r.final_x, 12) for r in runs.values()}) == 1
    # Not elementwise: one parameter per seed, same result for an elementwise optimizer.
    apart = catalogue({"lion": {**LION["lion"], "elementwise": False}})
    again = outcomes(settings, "auto", seeds=(0, 1, 2), specs=apart)
    for key, run in runs.items():  # the same elementwise float64 ops: measured identical
        np.testing.assert_allclose(run.x, again[key].x, rtol=0, atol=X_ATOL)


def test_generic_steps_caps_only_the_generic_path_and_is_recorded(tmp_path):
    """``generic_steps`` shortens the plug-in's runs, not the compiled ones; the shorter
    run says so in run.json, in its legend entry, and no paired comparison matches it with
    a longer run."""
    import json

    from amsgrad_repro.summaries.finals import load_finals, paired_differences
    from amsgrad_repro.synthetic.figure import shortened_labels
    from amsgrad_repro.synthetic.runner import write_run

    specs = catalogue(LION)
    settings = task("online", 4_000, ["adam", "lion"], generic_steps=1_000)
    runs = outcomes(settings, "auto", seeds=(0, 1), specs=specs)
    assert runs[("lion", 0)].steps[-1] == 1_000 and runs[("adam", 0)].steps[-1] == 4_000
    files = []
    for (name, seed), run in runs.items():
        write_run(tmp_path / name / str(seed), "t", settings, specs[name], run, {})
        files.append(tmp_path / name / str(seed) / "run.json")
    records = [json.loads(f.read_text()) for f in files]
    assert {r["optimizer"]: r["steps"] for r in records} == {"adam": 4_000, "lion": 1_000}
    labels = shortened_labels(records, {"lion": "lion (β1=0.9)"})
    assert labels == {"lion": "lion (β1=0.9), 1e+03 steps (generic path)"}
    finals = load_finals(files)
    # 4,000 steps: adam is still moving (R_t/t), and an unsettled run is paired with none
    assert set(finals.loc[finals["optimizer"] == "adam", "state"]) == {"unsettled"}
    assert paired_differences(finals, "t", "x", "adam", "adam").size == 0
    settled = finals.assign(state="failed")
    assert paired_differences(settled, "t", "x", "lion", "adam").size == 0
    assert paired_differences(settled, "t", "x", "adam", "adam").size == 2


def test_generic_path_of_a_torch_class_matches_its_definition():
    """SGD on the online problem, step by step in plain numpy."""
    settings = task("online", 500, ["sgd"], hparams={"lr": 0.01})
    run = outcomes(settings, "auto")[("sgd", 7)]
    x, g = 0.0, gradient_sequence(problem_id("online"), 0.0, 7, 500)
    for t in range(500):
        x = min(max(x - 0.01 * g[t], -1.0), 1.0)
    # 500 steps of one rounding each: ≤ 500·u = 5.6e-14 even if all add up (measured 0)
    assert run.engine == "generic" and run.final_x == pytest.approx(x, abs=X_ATOL)


def test_same_seed_same_gradients_and_the_problems_are_as_defined():
    stochastic = problem_id("stochastic")
    g = gradient_sequence(stochastic, 0.0, 3, 200_000)
    np.testing.assert_array_equal(g, gradient_sequence(stochastic, 0.0, 3, 200_000))
    assert not np.array_equal(g, gradient_sequence(stochastic, 0.0, 4, 200_000))
    assert set(np.unique(g)) == {-10.0, 1010.0}
    # a rate of 0.01 over 200,000 draws: σ = 2.2e-4, so 0.001 is 4.5σ (a statistical bound)
    assert (g == 1010.0).mean() == pytest.approx(0.01, abs=0.001)
    online = gradient_sequence(problem_id("online"), 0.0, 0, 303)
    assert np.flatnonzero(online == 1010.0).tolist() == [0, 101, 202]
    assert online.reshape(3, 101).sum(axis=1).tolist() == [10.0, 10.0, 10.0]
    theorem = gradient_sequence(problem_id("theorem1"), 5.0, 0, 6)
    assert theorem.tolist() == [5.0, -1.0, -1.0, 5.0, -1.0, -1.0]


@pytest.mark.parametrize("k", [10.0, 50.0])
def test_adopt_problem_gradient_law(k):
    """g = k² with probability 1/k, else −k: E[g] = 1 and the rare event has rate 1/k."""
    draws = np.concatenate(
        [gradient_sequence(problem_id("adopt"), k, seed, 400_000) for seed in range(5)]
    )
    assert set(np.unique(draws)) == {-k, k * k}
    rare = (draws == k * k).mean()
    n = draws.size
    assert abs(rare - 1 / k) < 5 * np.sqrt((1 / k) * (1 - 1 / k) / n)
    assert abs(draws.mean() - 1.0) < 5 * np.sqrt(k**3 / n)


def test_draws_are_counter_based():
    """A block of steps drawn alone equals the same steps of the whole sequence."""
    from amsgrad_repro.synthetic.kernel import gradient_block

    whole = gradient_sequence(problem_id("stochastic"), 0.0, 11, 5000)
    block = gradient_block(problem_id("stochastic"), 0.0, 11, 1234, 100)
    np.testing.assert_array_equal(block, whole[1233:1333])


def test_regret_is_loss_minus_best_fixed_point_in_hindsight():
    settings = task("stochastic", 3000, ["adam"], record_points=6000)
    result = outcomes(settings, "kernel", seeds=(2,))[("adam", 2)]
    g = gradient_sequence(problem_id("stochastic"), 0.0, 2, 3000)
    # x_t is the iterate *before* step t: x_1 = x1, then the recorded x after each step.
    xs = np.concatenate([[0.0], result.x[:-1]])
    assert result.steps.tolist() == list(range(1, 3001))
    cum_loss = np.cumsum(g * xs)
    best = np.minimum(np.cumsum(g) * -1.0, np.cumsum(g) * 1.0)
    t = np.arange(1, 3001)
    # Two sequential float64 sums of t ≤ 3000 terms |g·x| ≤ 1010: each partial sum is off by
    # at most t·u·1010·t, so the average by t·u·1010 ≤ 3.4e-10 (the worst case, every
    # rounding the same way; measured 0: the kernel sums in the same order). 1e-9 ≈ 3× it.
    np.testing.assert_allclose(result.avg_regret, (cum_loss - best) / t, rtol=1e-9, atol=1e-9)


def test_record_schedule_spans_the_run():
    schedule = record_schedule(10_000_000, 1000)
    assert schedule[0] == 1 and schedule[-1] == 10_000_000
    assert 900 <= schedule.size <= 1002
    assert np.all(np.diff(schedule) > 0)
    assert (schedule < 1000).sum() > 100  # the early transient is resolved


def test_paper_behaviour_on_the_online_problem():
    """Adam is driven to the worst point +1, AMSGrad and AdamNC to the optimum -1."""
    settings = task("online", 2_000_000, ["adam", "amsgrad", "adamnc"])
    finals = {name: run for (name, _), run in outcomes(settings, "kernel", seeds=(0,)).items()}
    assert finals["adam"].final_x > 0.99
    assert finals["amsgrad"].final_x < -0.99
    assert finals["adamnc"].final_x < -0.9
    assert finals["adam"].final_avg_regret > 0.19  # tends to 20/101
    assert finals["amsgrad"].final_avg_regret < 0.1


def test_three_amsgrad_forms_differ_on_the_synthetic_problems():
    """The paper's, PyTorch's and optax's AMSGrad are distinct algorithms: on the online
    problem their iterates part by far more than rounding."""
    settings = task(
        "online",
        200_000,
        ["amsgrad", "torch-amsgrad", "optax-amsgrad"],
        overrides={"torch-amsgrad": {"beta2": 0.99}, "optax-amsgrad": {"beta2": 0.99}},
    )
    runs = {name: run for (name, _), run in outcomes(settings, "kernel").items()}
    for a, b in (
        ("amsgrad", "torch-amsgrad"),
        ("amsgrad", "optax-amsgrad"),
        ("torch-amsgrad", "optax-amsgrad"),
    ):
        assert np.abs(runs[a].x - runs[b].x).max() > 1e-2, (a, b)


def test_task_settings_resolve_the_config_values():
    settings = task("online", 10, ["adopt"])
    resolved = task_settings(BUILTINS["adopt"], "t", settings)
    assert (resolved.lr, resolved.beta2, resolved.eps) == (0.5, 0.99, 1e-6)
