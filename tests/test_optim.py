"""The paper's optimizers against an independent reference written from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from amsgrad_repro.optim import Adam as PaperAdamAlg
from amsgrad_repro.optim import AdamNC, AMSGrad, PaperAdam
from amsgrad_repro.registry import OPTIMIZERS, build_optimizer


def reference_run(
    variant,
    grads_fn,
    x0,
    steps,
    *,
    lr,
    beta1,
    beta2,
    lr_schedule="constant",
    beta1_schedule="constant",
    decay=1.0,
    bias_correction=False,
    eps=0.0,
    bounds=None,
):
    """REFERENCE.md's table, step by step, in plain numpy (deliberately not sharing code)."""
    x = np.array(x0, dtype=float)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    vhat = np.zeros_like(x)
    prod1 = prod2 = 1.0
    sum_sq = np.zeros_like(x)
    for t in range(1, steps + 1):
        g = grads_fn(x, t)
        if beta1_schedule == "constant":
            b1 = beta1
        elif beta1_schedule == "exp_decay":
            b1 = beta1 * decay ** (t - 1)
        else:
            b1 = beta1 / t
        alpha = lr / math.sqrt(t) if lr_schedule == "inv_sqrt" else lr
        m = b1 * m + (1 - b1) * g
        if variant == "adamnc":
            sum_sq = sum_sq + g * g
            v = sum_sq / t  # beta2t = 1 - 1/t: the plain mean of g_1^2..g_t^2
            b2 = 1 - 1 / t
        else:
            v = beta2 * v + (1 - beta2) * g * g
            b2 = beta2
        prod1 *= b1
        prod2 *= b2
        second = v
        if variant == "amsgrad":
            vhat = np.maximum(vhat, v)
            second = vhat
        mc, vc = (1 - prod1, 1 - prod2) if bias_correction else (1.0, 1.0)
        denom = np.sqrt(second / vc) + eps
        safe = np.where(denom > 0, denom, 1.0)
        step = np.where(denom > 0, (m / mc) / safe, 0.0)
        x = x - alpha * step
        if bounds is not None:
            x = np.clip(x, *bounds)
    return x


def torch_run(optimizer, x0, grads_fn, steps, scheduler=None, bounds=None):
    x = optimizer.param_groups[0]["params"][0]
    for t in range(1, steps + 1):
        x.grad = torch.as_tensor(grads_fn(x.detach().numpy().copy(), t))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if bounds is not None:
            with torch.no_grad():
                x.clamp_(*bounds)
    return x.detach().numpy()


def quadratic(seed, dim=6):
    """A random convex quadratic with noisy gradients; noise depends only on (seed, t)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    hessian = a @ a.T / dim + 0.1 * np.eye(dim)
    b = rng.normal(size=dim)
    noise = rng.normal(size=(5000, dim))

    def grads(x, t):
        return hessian @ x + b + 0.5 * noise[t - 1]

    return grads, rng.normal(size=dim)


OPTIONS = [
    dict(),
    dict(lr_schedule="inv_sqrt"),
    dict(beta1_schedule="exp_decay", decay=0.99),
    dict(beta1_schedule="inv_t"),
    dict(bias_correction=True),
    dict(eps=1e-3),
    dict(bounds=(-0.3, 0.3)),
    dict(lr_schedule="inv_sqrt", bias_correction=True, eps=1e-8, bounds=(-1.0, 1.0)),
]


@pytest.mark.parametrize("variant", ["adam", "amsgrad", "adamnc"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "paper")
@pytest.mark.parametrize("seed", [0, 1])
def test_update_matches_formula_reference(variant, options, seed):
    grads, x0 = quadratic(seed)
    steps = 2000
    ref = reference_run(variant, grads, x0, steps, lr=0.01, beta1=0.9, beta2=0.99, **options)
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    kwargs = {("beta1_decay" if k == "decay" else k): v for k, v in options.items()}
    opt = PaperAdam([x], lr=0.01, betas=(0.9, 0.99), variant=variant, **kwargs)
    got = torch_run(opt, x0, grads, steps)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_named_classes_select_their_variant():
    x = torch.zeros(1, requires_grad=True)
    assert PaperAdamAlg([x]).defaults["variant"] == "adam"
    assert AMSGrad([x]).defaults["variant"] == "amsgrad"
    assert AdamNC([x]).defaults["variant"] == "adamnc"


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pytorch_form_equals_torch_adam(amsgrad, seed):
    """bias_correction=True, eps=1e-8 is exactly torch.optim.Adam (amsgrad or not)."""
    grads, x0 = quadratic(seed)
    steps = 3000
    x_ours = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    x_torch = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    ours = PaperAdam(
        [x_ours],
        lr=0.01,
        betas=(0.9, 0.999),
        variant="amsgrad" if amsgrad else "adam",
        bias_correction=True,
        eps=1e-8,
    )
    theirs = torch.optim.Adam([x_torch], lr=0.01, betas=(0.9, 0.999), eps=1e-8, amsgrad=amsgrad)
    np.testing.assert_allclose(
        torch_run(ours, x0, grads, steps), torch_run(theirs, x0, grads, steps), atol=1e-9
    )


def test_paper_form_differs_from_pytorch_form():
    """The documented difference: no bias correction and no eps in the paper form."""
    grads, x0 = quadratic(3)
    x_paper = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    x_torch = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    paper = AMSGrad([x_paper], lr=0.01, betas=(0.9, 0.999))
    pytorch = torch.optim.Adam([x_torch], lr=0.01, betas=(0.9, 0.999), amsgrad=True)
    diff = torch_run(paper, x0, grads, 50) - torch_run(pytorch, x0, grads, 50)
    assert np.abs(diff).max() > 1e-3


def test_pytorch_amsgrad_takes_max_of_raw_v_then_debiases():
    """torch keeps max of the raw EMA and divides by the *current* 1 - beta2^t, not the max
    of the debiased v (which older optax used): after one huge gradient then tiny ones the
    two denominators differ by orders of magnitude, and torch follows the raw-max rule."""
    beta2 = 0.999
    gs = [100.0] + [1e-3] * 199
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([x], lr=1.0, betas=(0.0, beta2), eps=0.0, amsgrad=True)
    v = vmax_raw = vmax_debiased = 0.0
    for t, g in enumerate(gs, start=1):
        before = float(x.detach())
        x.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        v = beta2 * v + (1 - beta2) * g * g
        vmax_raw = max(vmax_raw, v)
        vmax_debiased = max(vmax_debiased, v / (1 - beta2**t))
    step = before - float(x.detach())
    raw_rule = g / math.sqrt(vmax_raw / (1 - beta2 ** len(gs)))
    debiased_rule = g / math.sqrt(vmax_debiased)
    assert step == pytest.approx(raw_rule, rel=1e-9)
    assert abs(raw_rule - debiased_rule) > 1e-3 * raw_rule


@pytest.mark.parametrize("variant", ["adam", "amsgrad", "adamnc"])
def test_zero_gradients_with_zero_eps_give_zero_step_not_nan(variant):
    x = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    opt = PaperAdam([x], lr=0.1, variant=variant)
    for g in ([0.0, 1.0], [0.0, -2.0], [0.0, 0.0]):
        x.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    assert torch.isfinite(x).all()
    assert float(x.detach()[0]) == 0.5


def test_projection_keeps_iterates_in_the_box():
    x = torch.tensor([0.9], dtype=torch.float64, requires_grad=True)
    opt = PaperAdam([x], lr=1.0, variant="amsgrad", bounds=(-1.0, 1.0))
    for _ in range(20):
        x.grad = torch.tensor([-10.0], dtype=torch.float64)
        opt.step()
        assert -1.0 <= float(x.detach()) <= 1.0
    assert float(x.detach()) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(variant="nadam"),
        dict(lr=0.0),
        dict(betas=(1.0, 0.9)),
        dict(eps=-1.0),
        dict(bounds=(1.0, -1.0)),
        dict(lr_schedule="cosine"),
    ],
)
def test_invalid_options_are_rejected(kwargs):
    x = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError):
        PaperAdam([x], **kwargs)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_builds_and_steps(name):
    x = torch.ones(3, requires_grad=True)
    opt, scheduler = build_optimizer(name, [x], {"lr": 0.1, "lr_schedule": "inv_sqrt"})
    for _ in range(3):
        x.grad = torch.ones(3)
        opt.step()
        if scheduler is not None:
            scheduler.step()
    assert torch.isfinite(x).all() and (x < 1).all()


def test_lambda_schedule_gives_alpha_over_sqrt_t_for_torch_forms():
    x = torch.zeros(1, requires_grad=True)
    opt, scheduler = build_optimizer("torch-amsgrad", [x], {"lr": 0.5, "lr_schedule": "inv_sqrt"})
    for t in range(1, 6):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 / math.sqrt(t))
        x.grad = torch.ones(1)
        opt.step()
        scheduler.step()


def test_unknown_hyper_parameter_is_an_error():
    x = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="no hyper-parameter 'gamma'"):
        build_optimizer("adam", [x], {"gamma": 0.1})
