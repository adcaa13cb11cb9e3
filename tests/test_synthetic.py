"""The compiled synthetic kernel against the plain torch.optim loop, and the problems."""

from __future__ import annotations

import numpy as np
import pytest

from amsgrad_repro.registry import OPTIMIZERS
from amsgrad_repro.synthetic.kernel import record_schedule
from amsgrad_repro.synthetic.problems import PROBLEMS, gradient_sequence, problem_id
from amsgrad_repro.synthetic.runner import run_one

KERNEL_OPTIMIZERS = sorted(n for n, s in OPTIMIZERS.items() if s.kernel_flags is not None)


def task(problem, steps, **extra):
    settings = {
        "kind": "synthetic",
        "problem": problem,
        "optimizers": KERNEL_OPTIMIZERS,
        "hparams": {"lr": 0.5, "lr_schedule": "inv_sqrt", "betas": [0.9, 0.99]},
        "steps": steps,
        "x1": 0.0,
        "record_points": 300,
        "C": 3.0,
    }
    settings.update(extra)
    return settings


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("optimizer", KERNEL_OPTIMIZERS)
def test_kernel_equals_torch_optimizer_loop(problem, optimizer):
    settings = task(problem, 12_000)
    if problem == "theorem1":
        settings["hparams"] = {"lr": 0.5, "lr_schedule": "inv_sqrt", "betas": [0.0, 0.1]}
    fast, engine, _ = run_one(settings, optimizer, seed=7, engine="kernel")
    slow, slow_engine, _ = run_one(settings, optimizer, seed=7, engine="torch")
    assert (engine, slow_engine) == ("kernel", "torch")
    np.testing.assert_array_equal(fast.steps, slow.steps)
    np.testing.assert_allclose(fast.x, slow.x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.avg_regret, slow.avg_regret, rtol=1e-6, atol=1e-6)
    assert fast.final_x == pytest.approx(slow.final_x, abs=1e-6)


@pytest.mark.parametrize(
    "hparams",
    [
        {"lr": 0.1, "lr_schedule": "constant", "betas": [0.9, 0.99], "eps": 1e-3},
        {"lr": 0.3, "lr_schedule": "inv_sqrt", "betas": [0.9, 0.99], "bias_correction": True},
        {
            "lr": 0.3,
            "lr_schedule": "inv_sqrt",
            "betas": [0.9, 0.99],
            "beta1_schedule": "exp_decay",
            "beta1_decay": 0.999,
        },
        {"lr": 0.3, "lr_schedule": "inv_sqrt", "betas": [0.9, 0.99], "beta1_schedule": "inv_t"},
    ],
)
@pytest.mark.parametrize("optimizer", ["adam", "amsgrad", "adamnc"])
def test_kernel_equals_torch_for_every_option(hparams, optimizer):
    settings = task("stochastic", 10_000, hparams=hparams)
    fast, _, _ = run_one(settings, optimizer, seed=1, engine="kernel")
    slow, _, _ = run_one(settings, optimizer, seed=1, engine="torch")
    np.testing.assert_allclose(fast.x, slow.x, rtol=0, atol=1e-6)


def test_optimizers_without_kernel_fall_back_to_torch():
    result, engine, _ = run_one(task("online", 500, hparams={"lr": 0.01}), "sgd", seed=0)
    assert engine == "torch"
    assert -1.0 <= result.final_x <= 1.0


def test_same_seed_same_gradients_and_the_problems_are_as_defined():
    g = gradient_sequence(problem_id("stochastic"), 0.0, 3, 200_000)
    np.testing.assert_array_equal(g, gradient_sequence(problem_id("stochastic"), 0.0, 3, 200_000))
    assert not np.array_equal(g, gradient_sequence(problem_id("stochastic"), 0.0, 4, 200_000))
    assert set(np.unique(g)) == {-10.0, 1010.0}
    assert (g == 1010.0).mean() == pytest.approx(0.01, abs=0.001)
    online = gradient_sequence(problem_id("online"), 0.0, 0, 303)
    assert np.flatnonzero(online == 1010.0).tolist() == [0, 101, 202]
    assert online.reshape(3, 101).sum(axis=1).tolist() == [10.0, 10.0, 10.0]
    theorem = gradient_sequence(problem_id("theorem1"), 5.0, 0, 6)
    assert theorem.tolist() == [5.0, -1.0, -1.0, 5.0, -1.0, -1.0]


def test_regret_is_loss_minus_best_fixed_point_in_hindsight():
    settings = task("stochastic", 3000, record_points=6000)
    result, _, _ = run_one(settings, "adam", seed=2)
    g = gradient_sequence(problem_id("stochastic"), 0.0, 2, 3000)
    # x_t is the iterate *before* step t: x_1 = x1, then the recorded x after each step.
    xs = np.concatenate([[0.0], result.x[:-1]])
    assert result.steps.tolist() == list(range(1, 3001))
    cum_loss = np.cumsum(g * xs)
    best = np.minimum(np.cumsum(g) * -1.0, np.cumsum(g) * 1.0)
    t = np.arange(1, 3001)
    np.testing.assert_allclose(result.avg_regret, (cum_loss - best) / t, rtol=1e-9, atol=1e-9)


def test_record_schedule_spans_the_run():
    schedule = record_schedule(10_000_000, 1000)
    assert schedule[0] == 1 and schedule[-1] == 10_000_000
    assert 900 <= schedule.size <= 1002
    assert np.all(np.diff(schedule) > 0)
    assert (schedule < 1000).sum() > 100  # the early transient is resolved


def test_paper_behaviour_on_the_online_problem():
    """Adam is driven to the worst point +1, AMSGrad and AdamNC to the optimum -1."""
    settings = task("online", 2_000_000)
    finals = {name: run_one(settings, name, seed=0)[0] for name in ("adam", "amsgrad", "adamnc")}
    assert finals["adam"].final_x > 0.99
    assert finals["amsgrad"].final_x < -0.99
    assert finals["adamnc"].final_x < -0.9
    assert finals["adam"].final_avg_regret > 0.19  # tends to 20/101
    assert finals["amsgrad"].final_avg_regret < 0.1
