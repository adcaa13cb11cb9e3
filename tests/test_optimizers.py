"""Every built-in update against (a) an independent step-by-step reference written from its
paper's algorithm box and (b) the implementation in pytorch-optimizer or torch.optim, over
thousands of steps on random problems (several tensor shapes, zero gradients included);
the single- and multi-tensor paths against each other; and the documented differences
between a paper's box and a library's form, asserted.

The references below are plain numpy and deliberately share no code with the package.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_optimizer
import torch

from amsgrad_repro.optimizers import BUILTINS, HParamError, catalogue, task_settings
from amsgrad_repro.optimizers.torch_optimizer import build

SHAPES = [(6,), (3, 4), (2, 1, 3)]
STEPS = 1500
# Everything below runs in float64, where two codes of the same algebra differ only by the
# order of their roundings (u = 2^-53 = 1.1e-16 each). Measured over the 1500 steps (any
# box, option or library form): at most 375·eps64 = 8.3e-14 relative (AdaBound's clipped
# rate; the Adam family ≤ 66·eps64) and 1.8e-15 absolute on |x| ~ 1. RTOL = 1e-12 admits
# 12× the worst; ATOL = 1e-14 (45 ulps of |x| ~ 1) covers a coordinate near 0, whose error
# follows the scale of the others. A real difference fails it (tried: ε added to √v̂ before
# the division by √(1 − β2^t) instead of after moved x by 1.6e-8 to 1e-7, which the former
# rtol = 1e-6, atol = 1e-9 let through in the box and torch-adam cases).
RTOL = 1e-12
ATOL = 1e-14


# --- the problems ------------------------------------------------------------------------


def problem(seed: int):
    """Convex quadratics on tensors of several shapes with noisy gradients. A fixed mask
    zeroes some coordinates' gradients forever and every 9th step is a zero gradient, so
    the zero-denominator rule and zero gradients are exercised. Gradients depend on x."""
    rng = np.random.default_rng(seed)
    size = sum(math.prod(s) for s in SHAPES)
    a = rng.normal(size=(size, size))
    hessian = a @ a.T / size + 0.1 * np.eye(size)
    b = rng.normal(size=size)
    noise = rng.normal(size=(STEPS + 1, size))
    dead = rng.random(size) < 0.2

    def grads(x: np.ndarray, t: int) -> np.ndarray:
        g = hessian @ x + b + 0.5 * noise[t]
        g[dead] = 0.0
        return g * 0.0 if t % 9 == 0 else g

    return grads, rng.normal(size=size)


def split(flat: np.ndarray) -> list[np.ndarray]:
    out, start = [], 0
    for shape in SHAPES:
        n = math.prod(shape)
        out.append(flat[start : start + n].reshape(shape))
        start += n
    return out


def run_torch(make_optimizer, grads, x0: np.ndarray, steps: int, scheduler=None) -> np.ndarray:
    """Any torch optimizer on the problem, one parameter tensor per shape (float64)."""
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in split(x0)]
    optimizer = make_optimizer(params)
    for t in range(1, steps + 1):
        x = np.concatenate([p.detach().numpy().ravel() for p in params])
        for param, g in zip(params, split(grads(x, t)), strict=True):
            param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return np.concatenate([p.detach().numpy().ravel() for p in params])


def ours(name: str, hparams: dict, *, foreach: bool = False):
    spec = BUILTINS[name]
    settings = spec.resolve(("", hparams))
    return lambda params: build(spec, params, settings, foreach=foreach)[0]


def run_reference(step, grads, x0: np.ndarray, steps: int) -> np.ndarray:
    """``step(x, g, t, state) -> x``: a reference update applied to the flat vector."""
    x, state = x0.copy(), {}
    for t in range(1, steps + 1):
        x = step(x, grads(x, t), t, state)
    return x


def zero_safe(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator/denominator, 0 where the denominator is 0 (REFERENCE.md's rule)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


# --- (a) references from the algorithm boxes ----------------------------------------------


def reddi(
    variant,
    lr,
    beta1,
    beta2,
    *,
    lr_schedule="constant",
    beta1_schedule="constant",
    beta1_decay=1.0,
    bias_correction=False,
    eps=0.0,
):
    """Reddi et al.'s Algorithms 1 and 2 and Section 4's AdamNC, plus the options; the
    optax form takes the max of the bias-corrected v."""

    def step(x, g, t, s):
        s.setdefault("m", np.zeros_like(x))
        s.setdefault("v", np.zeros_like(x))
        s.setdefault("vhat", np.zeros_like(x))
        s.setdefault("sum_sq", np.zeros_like(x))
        s.setdefault("p1", 1.0)
        s.setdefault("p2", 1.0)
        b1 = {"constant": beta1, "exp_decay": beta1 * beta1_decay ** (t - 1), "inv_t": beta1 / t}[
            beta1_schedule
        ]
        alpha = lr / math.sqrt(t) if lr_schedule == "inv_sqrt" else lr
        s["m"] = b1 * s["m"] + (1 - b1) * g
        if variant == "adamnc":
            s["sum_sq"] = s["sum_sq"] + g * g
            s["v"], b2 = s["sum_sq"] / t, 1 - 1 / t
        else:
            s["v"], b2 = beta2 * s["v"] + (1 - beta2) * g * g, beta2
        s["p1"] *= b1
        s["p2"] *= b2
        mc, vc = (1 - s["p1"], 1 - s["p2"]) if bias_correction else (1.0, 1.0)
        if variant == "optax":
            s["vhat"] = np.maximum(s["vhat"], s["v"] / vc)
            denom = np.sqrt(s["vhat"]) + eps
        else:
            second = s["v"]
            if variant == "amsgrad":
                s["vhat"] = np.maximum(s["vhat"], s["v"])
                second = s["vhat"]
            denom = np.sqrt(second / vc) + eps
        return x - alpha * zero_safe(s["m"] / mc, denom)

    return step


def adopt_box(lr, beta1, beta2, eps, clip=False):
    """Taniguchi et al. (2024), Algorithm 1; ``clip``: the authors' code, whose step counter
    is 0 at the first gradient (v only), so move n = t − 1 is clipped to ±n^(1/4)."""

    def step(x, g, t, s):
        if t == 1:
            s["m"], s["v"] = np.zeros_like(x), g * g
            return x
        normed = g / np.maximum(np.sqrt(s["v"]), eps)
        if clip:
            normed = np.clip(normed, -((t - 1) ** 0.25), (t - 1) ** 0.25)
        s["m"] = beta1 * s["m"] + (1 - beta1) * normed
        s["v"] = beta2 * s["v"] + (1 - beta2) * g * g
        return x - lr * s["m"]

    return step


def adabelief_box(lr, beta1, beta2, eps):
    """Zhuang et al. (2020), Algorithm 2."""

    def step(x, g, t, s):
        m = s.get("m", np.zeros_like(x))
        v = s.get("s", np.zeros_like(x))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (g - m) ** 2 + eps
        s["m"], s["s"] = m, v
        m_hat, s_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        return x - lr * m_hat / (np.sqrt(s_hat) + eps)

    return step


def yogi_box(lr, beta1, beta2, eps, v0):
    """Zaheer et al. (2018), Algorithm 2 (no bias correction), v_0 given."""

    def step(x, g, t, s):
        m = s.get("m", np.zeros_like(x))
        v = s.get("v", np.full_like(x, v0))
        m = beta1 * m + (1 - beta1) * g
        v = v - (1 - beta2) * np.sign(v - g * g) * g * g
        s["m"], s["v"] = m, v
        return x - lr * m / (np.sqrt(v) + eps)

    return step


def adabound_box(lr, beta1, beta2, final_lr, gamma, amsbound=False):
    """Luo et al. (2019), Algorithm 2 (AdaBound; AMSBound with the max), with the
    authors' bound functions."""

    def step(x, g, t, s):
        m = s.get("m", np.zeros_like(x))
        v = s.get("v", np.zeros_like(x))
        vhat = s.get("vhat", np.zeros_like(x))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        vhat = np.maximum(vhat, v) if amsbound else v
        s.update(m=m, v=v, vhat=vhat)
        lower = final_lr * (1 - 1 / (gamma * t + 1))
        upper = final_lr * (1 + 1 / (gamma * t))
        with np.errstate(divide="ignore"):
            rate = np.clip(lr / np.sqrt(vhat), lower, upper) / math.sqrt(t)
        return x - rate * m

    return step


def padam_box(lr, beta1, beta2, p):
    """Chen et al. (2020), Algorithm 1: AMSGrad with v̂^p."""

    def step(x, g, t, s):
        m = s.get("m", np.zeros_like(x))
        v = s.get("v", np.zeros_like(x))
        vhat = s.get("vhat", np.zeros_like(x))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        vhat = np.maximum(vhat, v)
        s.update(m=m, v=v, vhat=vhat)
        return x - lr * zero_safe(m, vhat**p)

    return step


ADAM_OPTIONS = [
    dict(),
    dict(lr_schedule="inv_sqrt"),
    dict(beta1_schedule="exp_decay", beta1_decay=0.99),
    dict(beta1_schedule="inv_t"),
    dict(bias_correction=True),
    dict(eps=1e-3),
    dict(lr_schedule="inv_sqrt", bias_correction=True, eps=1e-8),
]
BOXES = [
    *[
        (
            name,
            {"lr": 0.01, "beta1": 0.9, "beta2": 0.99, **options},
            reddi(variant, 0.01, 0.9, 0.99, **options),
        )
        for name, variant in (("adam", "adam"), ("amsgrad", "amsgrad"), ("adamnc", "adamnc"))
        for options in ADAM_OPTIONS
    ],
    (
        "optax-amsgrad",
        {"lr": 0.01, "beta1": 0.9, "beta2": 0.999},
        reddi("optax", 0.01, 0.9, 0.999, bias_correction=True, eps=1e-8),
    ),
    ("adopt", {"lr": 0.01}, adopt_box(0.01, 0.9, 0.9999, 1e-6, clip=True)),
    ("adopt-unclipped", {"lr": 0.01}, adopt_box(0.01, 0.9, 0.9999, 1e-6)),
    ("adabelief", {"lr": 0.01}, adabelief_box(0.01, 0.9, 0.999, 1e-16)),
    ("yogi", {}, yogi_box(0.01, 0.9, 0.999, 1e-3, 1e-6)),
    ("adabound", {"lr": 0.01}, adabound_box(0.01, 0.9, 0.999, 0.1, 1e-3)),
    ("amsbound", {"lr": 0.01}, adabound_box(0.01, 0.9, 0.999, 0.1, 1e-3, amsbound=True)),
    ("padam", {"lr": 0.01}, padam_box(0.01, 0.9, 0.999, 0.125)),
    ("padam", {"lr": 0.01, "partial": 0.5}, padam_box(0.01, 0.9, 0.999, 0.5)),
]


def _box_id(case) -> str:
    name, hparams, _ = case
    extra = ",".join(f"{k}={v}" for k, v in hparams.items() if k not in ("lr", "beta1", "beta2"))
    return f"{name}[{extra}]" if extra else name


@pytest.mark.parametrize("case", BOXES, ids=_box_id)
def test_update_matches_the_algorithm_box(case):
    name, hparams, reference = case
    grads, x0 = problem(1)
    expected = run_reference(reference, grads, x0, STEPS)
    got = run_torch(ours(name, hparams), grads, x0, STEPS)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert np.abs(got - x0).max() > 1e-3  # it moved


# --- (b) the libraries' forms -------------------------------------------------------------


def po(cls_name: str, **kwargs):
    return lambda params: getattr(pytorch_optimizer, cls_name)(params, **kwargs)


ORACLES = [
    (
        "torch-amsgrad form of amsgrad",
        ours("amsgrad", {"lr": 0.01, "beta2": 0.999, "bias_correction": True, "eps": 1e-8}),
        lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999), amsgrad=True),
    ),
    (
        "torch-adam form of adam",
        ours("adam", {"lr": 0.01, "beta2": 0.999, "bias_correction": True, "eps": 1e-8}),
        lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999)),
    ),
    (
        "adabelief = pytorch-optimizer AdaBelief(rectify=False)",
        ours("adabelief", {"lr": 0.01}),
        po("AdaBelief", lr=0.01, rectify=False),
    ),
    (
        "bias-corrected yogi = pytorch-optimizer Yogi (with m0 = v0 = 0)",
        ours("yogi", {"bias_correction": True, "initial_accumulator": 0.0}),
        po("Yogi", lr=0.01, initial_accumulator=0.0),
    ),
    (
        "adabound code form = pytorch-optimizer AdaBound",
        ours(
            "adabound",
            {"lr": 0.01, "bias_correction": True, "eps": 1e-8, "divide_by_sqrt_t": False},
        ),
        po("AdaBound", lr=0.01),
    ),
    (
        "amsbound code form = pytorch-optimizer AdaBound(ams_bound=True)",
        ours(
            "amsbound",
            {"lr": 0.01, "bias_correction": True, "eps": 1e-8, "divide_by_sqrt_t": False},
        ),
        po("AdaBound", lr=0.01, ams_bound=True),
    ),
    (
        "padam code form without max = pytorch-optimizer PAdam",
        ours("padam", {"lr": 0.01, "bias_correction": True, "eps": 1e-8, "amsgrad": False}),
        po("PAdam", lr=0.01, partial=0.125),
    ),
]


@pytest.mark.parametrize("case", ORACLES, ids=[c[0] for c in ORACLES])
def test_update_matches_the_library_implementation(case):
    _, mine, theirs = case
    grads, x0 = problem(2)
    np.testing.assert_allclose(
        run_torch(mine, grads, x0, STEPS),
        run_torch(theirs, grads, x0, STEPS),
        rtol=RTOL,
        atol=ATOL,
    )


def authors_clip(step: int) -> float:
    """The authors' clip_lambda (step**0.25, their step 0 being the first gradient) in
    pytorch-optimizer's count, which is 1 at the first gradient."""
    return (step - 1) ** 0.25


def trajectory(make_optimizer, grads, x0: np.ndarray, steps: int) -> np.ndarray:
    """x after every step (float64), one row per step."""
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in split(x0)]
    optimizer = make_optimizer(params)
    rows = []
    for t in range(1, steps + 1):
        x = np.concatenate([p.detach().numpy().ravel() for p in params])
        for param, g in zip(params, split(grads(x, t)), strict=True):
            param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        rows.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    return np.array(rows)


@pytest.mark.parametrize("foreach", [False, True], ids=["single-tensor", "multi-tensor"])
@pytest.mark.parametrize("name, clip_lambda", [("adopt", authors_clip), ("adopt-unclipped", None)])
def test_adopt_matches_pytorch_optimizer_step_by_step(name, clip_lambda, foreach):
    """Both ADOPT forms against pytorch-optimizer's ADOPT on both of its paths, after every
    one of 1500 steps, to the box test's float64 bounds (the same operations; measured
    bit-identical on CPU, the clip bound being the same pow). The clip is active: the
    clipped and unclipped trajectories part by up to 0.55 (measured)."""
    grads, x0 = problem(2)
    mine = trajectory(ours(name, {"lr": 0.01}, foreach=foreach), grads, x0, STEPS)
    theirs = po("ADOPT", lr=0.01, clip_lambda=clip_lambda, foreach=foreach)
    np.testing.assert_allclose(mine, trajectory(theirs, grads, x0, STEPS), rtol=RTOL, atol=ATOL)
    other = "adopt-unclipped" if name == "adopt" else "adopt"
    apart = trajectory(ours(other, {"lr": 0.01}, foreach=foreach), grads, x0, STEPS)
    assert np.abs(apart - mine).max() > 1e-6


@pytest.mark.parametrize("foreach", [False, True], ids=["single-tensor", "multi-tensor"])
def test_adopt_decoupled_weight_decay_matches_pytorch_optimizer(foreach):
    """ADOPT's λ against pytorch-optimizer's ``weight_decouple=True`` on both paths, after
    every one of 1500 steps, to the box test's float64 bounds; a decay that did nothing
    would leave the trajectory within those bounds of λ = 0, and it moves by far more."""
    grads, x0 = problem(2)
    mine = trajectory(
        ours("adopt", {"lr": 0.01, "weight_decay": 0.5}, foreach=foreach), grads, x0, STEPS
    )
    theirs = po(
        "ADOPT", lr=0.01, clip_lambda=authors_clip, weight_decay=0.5, weight_decouple=True,
        foreach=foreach,
    )  # fmt: skip
    np.testing.assert_allclose(mine, trajectory(theirs, grads, x0, STEPS), rtol=RTOL, atol=ATOL)
    undecayed = trajectory(ours("adopt", {"lr": 0.01}, foreach=foreach), grads, x0, STEPS)
    assert np.abs(undecayed - mine).max() > 1e-3


# The successors' decoupled decay (the dispatch's, ``NativeFamily.decoupled_decay``) against
# pytorch-optimizer's ``weight_decouple=True``: the libraries' forms of ORACLES with λ.
DECAY = 0.5
DECAY_ORACLES = [
    ("adabelief", {"lr": 0.01}, "AdaBelief", {"lr": 0.01, "rectify": False}),
    ("yogi", {"bias_correction": True, "initial_accumulator": 0.0}, "Yogi",
     {"lr": 0.01, "initial_accumulator": 0.0}),
    ("adabound", {"lr": 0.01, "bias_correction": True, "eps": 1e-8, "divide_by_sqrt_t": False},
     "AdaBound", {"lr": 0.01}),
    ("amsbound", {"lr": 0.01, "bias_correction": True, "eps": 1e-8, "divide_by_sqrt_t": False},
     "AdaBound", {"lr": 0.01, "ams_bound": True}),
    ("padam", {"lr": 0.01, "bias_correction": True, "eps": 1e-8, "amsgrad": False}, "PAdam",
     {"lr": 0.01, "partial": 0.125}),
]  # fmt: skip


@pytest.mark.parametrize("foreach", [False, True], ids=["single-tensor", "multi-tensor"])
@pytest.mark.parametrize("case", DECAY_ORACLES, ids=[c[0] for c in DECAY_ORACLES])
def test_successors_decoupled_weight_decay_matches_pytorch_optimizer(case, foreach):
    """AdaBelief, Yogi, AdaBound, AMSBound and Padam with λ against pytorch-optimizer's
    ``weight_decouple=True`` (x ← x·(1 − α·λ) before the update) on both of our paths,
    after every one of 1500 steps, to the box test's float64 bounds; without the decay the
    trajectory leaves those bounds by far."""
    name, mine_hp, cls_name, theirs_kw = case
    grads, x0 = problem(2)
    decayed = {**mine_hp, "weight_decay": DECAY}
    mine = trajectory(ours(name, decayed, foreach=foreach), grads, x0, STEPS)
    theirs = po(cls_name, **theirs_kw, weight_decay=DECAY, weight_decouple=True)
    np.testing.assert_allclose(mine, trajectory(theirs, grads, x0, STEPS), rtol=RTOL, atol=ATOL)
    undecayed = trajectory(ours(name, mine_hp, foreach=foreach), grads, x0, STEPS)
    assert np.abs(undecayed - mine).max() > 1e-3


@pytest.mark.parametrize("name", ["adabelief", "yogi", "adabound", "amsbound", "padam"])
def test_successors_weight_decay_sends_1d_runs_to_the_generic_path(name):
    """The compiled kernel's scalar step sees no x, so it cannot decay: λ > 0 must leave it."""
    from amsgrad_repro.optimizers import scalar_form

    spec = BUILTINS[name]
    assert scalar_form(spec, spec.resolve()) is not None
    assert scalar_form(spec, spec.resolve(("", {"weight_decay": 0.1}))) is None


def test_adopt_forms_are_fixed_by_the_name():
    assert BUILTINS["adopt"].resolve().clip == "step^0.25"
    assert BUILTINS["adopt-unclipped"].resolve().clip == "none"
    with pytest.raises(HParamError, match=r"t\.clip: fixed by the optimizer's name"):
        BUILTINS["adopt"].resolve(("t", {"clip": "none"}))


DIFFERENCES = [
    # (what differs, the box form, the library form)
    (
        "paper AMSGrad has no bias correction and no ε",
        ours("amsgrad", {"lr": 0.01, "beta2": 0.999}),
        lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999), amsgrad=True),
    ),
    (
        "optax takes the max of the corrected v, PyTorch of the raw v",
        ours("optax-amsgrad", {"lr": 0.01}),
        lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999), amsgrad=True),
    ),
    (
        "the Yogi box has no bias correction",
        ours("yogi", {"initial_accumulator": 0.0}),
        po("Yogi", lr=0.01, initial_accumulator=0.0),
    ),
    (
        "pytorch-optimizer's Yogi starts m at the accumulator too",
        ours("yogi", {"bias_correction": True}),
        po("Yogi", lr=0.01),
    ),
    (
        "the AdaBound box divides by √t and has no corrections",
        ours("adabound", {"lr": 0.01}),
        po("AdaBound", lr=0.01),
    ),
    (
        "the Padam box takes the max of v, pytorch-optimizer's PAdam does not",
        ours("padam", {"lr": 0.01, "bias_correction": True, "eps": 1e-8}),
        po("PAdam", lr=0.01, partial=0.125),
    ),
    (
        "pytorch-optimizer's ADOPT clips by default, the paper's box does not",
        ours("adopt-unclipped", {"lr": 0.1}),
        po("ADOPT", lr=0.1),
    ),
    (
        "pytorch-optimizer's default clips move n to (n+1)^(1/4), the authors' to n^(1/4)",
        ours("adopt", {"lr": 0.1}),
        po("ADOPT", lr=0.1),
    ),
]


@pytest.mark.parametrize("case", DIFFERENCES, ids=[c[0] for c in DIFFERENCES])
def test_documented_differences_between_box_and_library(case):
    _, mine, theirs = case
    grads, x0 = problem(3)
    diff = run_torch(mine, grads, x0, 300) - run_torch(theirs, grads, x0, 300)
    # A lower bound on a real difference: 10^8 × the rounding of equal forms (≤ 1.8e-15,
    # RTOL's comment) and 150× below the smallest documented difference measured (Yogi's
    # m0 = accumulator: 1.6e-5; Padam's max: 1.7e-4; the others ≥ 0.15).
    assert np.abs(diff).max() > 1e-7


def test_pytorch_amsgrad_takes_max_of_raw_v_then_debiases():
    """torch keeps the max of the raw EMA and divides by the *current* 1 − β2^t, not the
    max of the debiased v (older optax): after one huge gradient then tiny ones the two
    denominators differ by orders of magnitude, and torch follows the raw-max rule."""
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
    # The step is a difference of iterates |x| ~ 1: ulp(1)/step = 2.2e-16/1.35e-4 = 1.6e-12
    # relative from that subtraction alone, plus ~200·u of the v's (measured 3.3e-13).
    assert step == pytest.approx(raw_rule, rel=1e-11)
    assert abs(raw_rule - debiased_rule) > 1e-3 * raw_rule  # measured 0.93·raw_rule


# --- paths, rules and the declaration ---------------------------------------------------

NATIVE = sorted(name for name, spec in BUILTINS.items() if spec.native is not None)


@pytest.mark.parametrize("name", NATIVE)
@pytest.mark.parametrize(
    "options", [{}, {"lr_schedule": "inv_sqrt", "eps": 1e-6}], ids=["default", "inv_sqrt"]
)
def test_single_and_multi_tensor_paths_agree(name, options):
    grads, x0 = problem(4)
    hparams = {k: v for k, v in {"lr": 0.01, **options}.items() if k in BUILTINS[name].hparam_rules}
    single = run_torch(ours(name, hparams, foreach=False), grads, x0, 1000)
    multi = run_torch(ours(name, hparams, foreach=True), grads, x0, 1000)
    # The same operations in the same order (float64): bit-identical on CPU (measured), but
    # a multi-tensor kernel may fuse (FMA) where the single one rounds twice, so a difference
    # of rounding order is admitted, to the box test's bounds.
    np.testing.assert_allclose(single, multi, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["adam", "amsgrad", "adamnc", "padam", "adabound"])
def test_zero_gradients_with_zero_eps_give_zero_step_not_nan(name):
    x = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    opt = ours(name, {"lr": 0.1})([x])
    for g in ([0.0, 1.0], [0.0, -2.0], [0.0, 0.0]):
        x.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    assert torch.isfinite(x).all()
    assert float(x.detach()[0]) == 0.5


def test_float32_zero_denominator_rule_leaves_tiny_denominators_alone():
    """ε = 0 is computed as the dtype's smallest normal: a coordinate whose v is a small
    positive number moves exactly as the formula says."""
    x = torch.zeros(2, dtype=torch.float32, requires_grad=True)
    opt = ours("amsgrad", {"lr": 1.0, "beta1": 0.0, "beta2": 0.0})([x])
    x.grad = torch.tensor([1e-15, 0.0], dtype=torch.float32)  # v = 1e-30, a normal float
    opt.step()
    assert x.detach().tolist() == [-1.0, 0.0]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", ["adam", "amsgrad", "adamnc", "yogi", "padam", "amsbound"])
@pytest.mark.parametrize(("flush", "gradient"), [(False, 1e-24), (True, 1e-20)])
def test_an_underflowed_v_gives_a_bounded_step_not_a_blow_up(name, foreach, flush, gradient):
    """ε = 0 with a gradient so small that v = (1 − β2)·g² underflows to 0 in float32 (g²
    below the smallest subnormal, or any subnormal once they flush to zero as training on a
    CPU does) while m = (1 − β1)·g is still normal: the step is bounded, not m/1.2e-38 ≈
    10^17·α (the rule of the previous version, which made logistic regression diverge)."""
    try:
        torch.set_flush_denormal(flush)
        x = torch.zeros(2, dtype=torch.float32, requires_grad=True)
        hp = {"lr": 1.0, "beta1": 0.9, "beta2": 0.99, "eps": 0.0}
        opt = ours(name, hp, foreach=foreach)([x])
        x.grad = torch.tensor([gradient, 1.0], dtype=torch.float32)
        opt.step()
        assert torch.isfinite(x).all() and x.detach().abs().max() <= 20.0, x
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_builds_and_descends(name):
    spec = BUILTINS[name]
    settings = spec.resolve(("", {"lr": 0.01, "lr_schedule": "inv_sqrt"}))
    x = torch.ones(3, requires_grad=True)
    opt, scheduler = build(spec, [x], settings)
    for _ in range(3):
        x.grad = torch.ones(3)
        opt.step()
        if scheduler is not None:
            scheduler.step()
    assert torch.isfinite(x).all() and (x < 1).all()


def test_lambda_schedule_gives_alpha_over_sqrt_t_for_torch_classes():
    spec = BUILTINS["torch-amsgrad"]
    settings = spec.resolve(("", {"lr": 0.5, "lr_schedule": "inv_sqrt"}))
    x = torch.zeros(1, requires_grad=True)
    opt, scheduler = build(spec, [x], settings)
    for t in range(1, 6):
        # 0.5 · (1/√t) against 0.5/√t: three roundings, ≤ 3u = 3.3e-16 relative
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 / math.sqrt(t), rel=1e-15)
        x.grad = torch.ones(1)
        opt.step()
        scheduler.step()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"gamma": 0.1}, "adam has no hyper-parameter 'gamma'"),
        ({"lr": 0.0}, "lr: must be > 0"),
        ({"beta1": 1.0}, "beta1: must be < 1"),
        ({"eps": -1.0}, "eps: must be >= 0"),
        ({"lr_schedule": "cosine"}, "lr_schedule: expected one of constant"),
        ({"bias_correction": "yes"}, "expected true or false"),
        ({"second_moment": "max"}, "fixed by the optimizer's name"),
    ],
)
def test_bad_hyper_parameters_name_the_key(values, message):
    with pytest.raises(HParamError, match=message):
        BUILTINS["adam"].resolve(("tasks.t.hparams", values))


def test_task_settings_apply_shared_values_then_overrides():
    task = {
        "hparams": {"lr": 0.5, "beta2": 0.9, "eps": 1e-3},
        "overrides": {"adopt": {"beta2": 0.999}},
    }
    adam = task_settings(BUILTINS["adam"], "t", task)
    adopt = task_settings(BUILTINS["adopt"], "t", task)
    sgd = task_settings(BUILTINS["sgd"], "t", task)
    assert (adam.lr, adam.beta2, adam.eps) == (0.5, 0.9, 1e-3)
    assert (adopt.lr, adopt.beta2, adopt.eps) == (0.5, 0.999, 1e-3)
    assert sgd.lr == 0.5 and not hasattr(sgd, "beta2")  # shared keys SGD lacks are not its


def test_every_builtin_is_declared_once_with_source_and_defaults():
    for name, spec in BUILTINS.items():
        assert spec.name == name and spec.summary and spec.source
        defaults = spec.default_values()
        assert defaults["lr"] > 0
        assert set(spec.hparam_rules) <= set(defaults)


def test_plugin_declaration_builds_the_named_class():
    specs = catalogue(
        {"lion": {"class": "pytorch_optimizer:Lion", "hparams": {"lr": 1e-3, "betas": [0.9, 0.99]}}}
    )
    settings = task_settings(specs["lion"], "t", {"hparams": {"lr": 0.01, "beta2": 0.5}})
    x = torch.ones(3, requires_grad=True)
    opt, _ = build(specs["lion"], [x], settings)
    assert isinstance(opt, pytorch_optimizer.Lion)
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["betas"] == (0.9, 0.99)


def test_readme_optimizer_table_is_the_catalogue(repo_root):
    from amsgrad_repro.optimizers.cli import markdown

    text = (repo_root / "README.md").read_text()
    table = text.split("<!-- optimizers:start -->\n")[1].split("\n<!-- optimizers:end -->")[0]
    assert table == markdown(BUILTINS), "README table is stale: paste `amsgrad-repro optimizers`"


# --- training recipes: warm-up schedules, decoupled weight decay, Nesterov SGD ------------


def warmup_factor(kind: str, t: int, horizon: int, warmup: float, final: float) -> float:
    """α_t/α written from the formulas (schedules.py's docstring), independently."""
    ramp = math.floor(warmup * horizon + 0.5)
    if t <= ramp:
        return t / ramp
    p = min(1.0, (t - ramp) / (horizon - ramp))
    shape = (1 + math.cos(math.pi * p)) / 2 if kind == "warmup_cosine" else 1 - p
    return final + (1 - final) * shape


WARMUPS = [
    ("warmup_cosine", 100, 0.1, 0.1),
    ("warmup_linear", 100, 0.05, 0.0),
    ("warmup_cosine", 37, 0.0, 0.25),  # no warm-up; an odd horizon
]


@pytest.mark.parametrize("kind, horizon, warmup, final", WARMUPS)
def test_warmup_schedules_follow_their_formulas(kind, horizon, warmup, final):
    from amsgrad_repro.optimizers.schedules import lr_factor

    settings = BUILTINS["adam"].resolve(
        ("", {"lr_schedule": kind, "lr_horizon": horizon, "lr_warmup": warmup, "lr_final": final})
    )
    got = [lr_factor(settings, t) for t in range(1, horizon + 20)]
    expected = [warmup_factor(kind, t, horizon, warmup, final) for t in range(1, horizon + 20)]
    # The same few operations on floats near 1, in another order: a few u = 1.1e-16.
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)
    ramp = math.floor(warmup * horizon + 0.5)
    assert got[ramp - 1] == 1.0 if ramp else got[0] < 1.0  # α reached at step W
    assert got[horizon - 1] == pytest.approx(final, abs=1e-15)  # f·α at T, and after it
    assert got[-1] == pytest.approx(final, abs=1e-15)


@pytest.mark.parametrize("name", ["torch-adam", "adamw", "sgd-nesterov", "amsgrad"])
def test_warmup_schedule_is_the_same_for_torch_classes_and_native_families(name):
    """A torch.optim class gets α_t from its LambdaLR; a native family computes it in its
    coefficients. Both must be the formula: read back from the LambdaLR's group lr, and
    from a native step with β1 = 0 and ε = 0, where |Δx| = α_t exactly (m = g, v̂ ≥ g²:
    with β2 = 0, √v̂ = |g| and the step is α_t·sign(g))."""
    from amsgrad_repro.optimizers.schedules import with_horizon

    spec = BUILTINS[name]
    values = {"lr": 0.5, "lr_schedule": "warmup_cosine", "lr_warmup": 0.2, "lr_final": 0.1}
    if spec.native is not None:
        values.update(beta1=0.0, beta2=0.0)
    settings = with_horizon(spec.resolve(("", values)), 20)
    assert settings.lr_horizon == 20
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt, scheduler = build(spec, [x], settings)
    for t in range(1, 26):
        expected = 0.5 * warmup_factor("warmup_cosine", t, 20, 0.2, 0.1)
        before = float(x.detach())
        if scheduler is not None:
            assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-15)
        x.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        else:  # 0.5·factor, then x − 0.5·factor·1/1: two roundings of |x| ≤ 12
            assert before - float(x.detach()) == pytest.approx(expected, abs=1e-14)


def test_a_warmup_schedule_without_its_horizon_is_refused():
    spec = BUILTINS["adamw"]
    settings = spec.resolve(("", {"lr_schedule": "warmup_linear"}))
    with pytest.raises(HParamError, match="needs lr_horizon"):
        build(spec, [torch.zeros(1, requires_grad=True)], settings)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lr_warmup": 1.0}, "lr_warmup: must be < 1"),
        ({"lr_final": 1.5}, "lr_final: must be <= 1"),
        ({"lr_horizon": 2.5}, "lr_horizon: expected an integer"),
        ({"lr_horizon": "100"}, "lr_horizon: expected a number"),
        ({"weight_decay": -0.1}, "weight_decay: must be >= 0"),
    ],
)
def test_bad_recipe_settings_name_the_key(values, message):
    with pytest.raises(HParamError, match=message):
        BUILTINS["amsgrad"].resolve(("tasks.t.hparams", values))


ADAMW = {"lr": 0.01, "beta2": 0.999, "bias_correction": True, "eps": 1e-8, "weight_decay": 0.05}
SCHEDULE = {"lr_schedule": "warmup_cosine", "lr_warmup": 0.1, "lr_final": 0.01}


@pytest.mark.parametrize("schedule", [{}, SCHEDULE], ids=["constant", "warmup_cosine"])
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    "name, amsgrad", [("amsgrad", True), ("adam", False)], ids=["amsgrad", "adam"]
)
def test_native_decoupled_weight_decay_is_torch_adamw(name, amsgrad, foreach, schedule):
    """The paper's forms with bias correction, ε and ``weight_decay`` are
    ``torch.optim.AdamW(amsgrad=...)`` (and ``adamw-amsgrad``/``adamw`` run that class),
    under a warm-up schedule too: the shrink 1 − α_t·λ uses the scheduled α_t. Float64,
    so the tolerance is RTOL/ATOL's rounding argument (the issue asked for 1e-6; this is
    10^6 times tighter and still 12× above the worst rounding measured)."""
    from amsgrad_repro.optimizers.schedules import lr_factor, with_horizon

    spec = BUILTINS[name]
    settings = with_horizon(spec.resolve(("", {**ADAMW, **schedule})), STEPS)
    torch_name = "adamw-amsgrad" if amsgrad else "adamw"
    torch_spec = BUILTINS[torch_name]
    torch_settings = with_horizon(
        torch_spec.resolve(("", {"lr": 0.01, "weight_decay": 0.05, **schedule})), STEPS
    )
    grads, x0 = problem(4)
    mine = run_torch(lambda p: build(spec, p, settings, foreach=foreach)[0], grads, x0, STEPS)
    holder = {}

    def theirs(params):
        opt = torch.optim.AdamW(
            params, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05, amsgrad=amsgrad
        )
        holder["s"] = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda done: lr_factor(torch_settings, done + 1)
        )
        return opt

    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in split(x0)]
    opt = theirs(params)
    for t in range(1, STEPS + 1):
        x = np.concatenate([p.detach().numpy().ravel() for p in params])
        for param, g in zip(params, split(grads(x, t)), strict=True):
            param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        holder["s"].step()
    reference = np.concatenate([p.detach().numpy().ravel() for p in params])
    np.testing.assert_allclose(mine, reference, rtol=RTOL, atol=ATOL)
    # ...and the named torch optimizer is that class with these settings.
    named = build(torch_spec, [torch.zeros(1, requires_grad=True)], torch_settings)[0]
    assert isinstance(named, torch.optim.AdamW)
    assert named.defaults["amsgrad"] is amsgrad and named.defaults["weight_decay"] == 0.05
    # The decay matters: without it the paths part by far more than the tolerance.
    plain = run_torch(ours(name, {**ADAMW, "weight_decay": 0.0}), grads, x0, STEPS)
    assert np.abs(plain - reference).max() > 1e-6


def test_decoupled_weight_decay_sends_1d_runs_to_the_generic_path():
    from amsgrad_repro.optimizers import scalar_form

    spec = BUILTINS["amsgrad"]
    assert scalar_form(spec, spec.resolve()) is not None
    assert scalar_form(spec, spec.resolve(("", {"weight_decay": 0.1}))) is None


def test_sgd_nesterov_is_torch_sgd_with_nesterov_momentum():
    spec = BUILTINS["sgd-nesterov"]
    opt, _ = build(spec, [torch.zeros(1, requires_grad=True)], spec.resolve())
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["nesterov"] is True and opt.defaults["momentum"] == 0.9
    with pytest.raises(HParamError, match="momentum: must be > 0"):
        spec.resolve(("tasks.t.overrides.sgd-nesterov", {"momentum": 0.0}))
    with pytest.raises(HParamError, match="has no hyper-parameter 'nesterov'"):
        spec.resolve(("tasks.t.overrides.sgd-nesterov", {"nesterov": False}))


def test_legends_show_the_recipe():
    from amsgrad_repro.optimizers.labels import describe_step_size, run_label_parts

    values = {"lr": 0.1, "lr_schedule": "warmup_cosine", "lr_warmup": 0.05, "lr_final": 0.0}
    assert describe_step_size(values) == "α=0.1 (5% warm-up, cos→0α)"
    linear = {**values, "lr_schedule": "warmup_linear", "lr_final": 0.1}
    assert describe_step_size(linear) == "α=0.1 (5% warm-up, lin→0.1α)"
    assert run_label_parts("adamw", {"lr": 0.1, "weight_decay": 0.01})["weight_decay"] == "λ=0.01"
    assert "weight_decay" not in run_label_parts("adam", {"lr": 0.1, "weight_decay": 0.0})
    assert run_label_parts("sgd-nesterov", {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}) == {
        "lr": "α=0.1",
        "momentum": "μ=0.9",
        "weight_decay": "L2=0.0005",
    }
