"""AdaBound and AMSBound (Luo, Xiong, Liu & Sun, ICLR 2019): Adam's per-coordinate step
size clipped into bounds that both tend to ``final_lr``, so the method becomes SGD.

Paper, Algorithm 2 (the default here): m_t, v_t as Adam (no bias correction, no ε);
η_t = Clip(α_t/√v̂_t, η_l(t), η_u(t))/√t; x_{t+1} = x_t − η_t·m_t, with v̂ = v (AdaBound)
or max(v̂, v) (AMSBound), η_l(t) = final_lr·(1 − 1/(γt + 1)), η_u(t) = final_lr·(1 + 1/(γt))
as in the authors' code (the paper leaves the bound functions open; final_lr follows α_t's
schedule, final_lr·α_t/α, as there). The authors' code (and pytorch-optimizer) fold the
bias corrections into the step, α_t·√(1 − β2^t)/(1 − β1^t), add ε = 1e-8 to √v̂ and do not
divide by √t: ``bias_correction: true, eps: 1e-8, divide_by_sqrt_t: false`` (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amsgrad_repro.optimizers.hparams import choice, flag, real
from amsgrad_repro.optimizers.lazy_torch import torch
from amsgrad_repro.optimizers.moments import MomentSettings, corrections, move_
from amsgrad_repro.optimizers.scalar import TINY64, decayed, guarded, scalar_code, sqrt
from amsgrad_repro.optimizers.schedules import step_size
from amsgrad_repro.optimizers.spec import NativeFamily, OptimizerSpec
from amsgrad_repro.optimizers.tensor_ops import (
    TensorState,
    foreach_guard_,
    foreach_moments_,
    foreach_second_moment_,
    guard_,
    moments_,
    per_param,
)

if TYPE_CHECKING:
    from torch import Tensor

SECOND_MOMENTS: tuple[str, ...] = ("ema", "max")
MAX = SECOND_MOMENTS.index("max")


@dataclass(frozen=True)
class AdaBoundSettings(MomentSettings):
    bias_correction: bool = flag(False, "fold √(1 − β2^t)/(1 − β1^t) into α (the code's form)")
    final_lr: float = real(0.1, "the SGD step size both bounds tend to", 0.0, low_open=True)
    gamma: float = real(1e-3, "γ, how fast the bounds close", 0.0, low_open=True, symbol="γ")
    eps: float = real(0.0, "ε added to √v̂ (0 in the paper)", 0.0, symbol="ε")
    divide_by_sqrt_t: bool = flag(True, "divide the clipped step by √t (the paper's box)")
    second_moment: str = choice(
        "ema", SECOND_MOMENTS, "v̂: v (AdaBound), max (AMSBound)", fixed=True
    )


@scalar_code
def adabound_coefficients(hp: Any, t: int, carry: tuple) -> tuple[tuple, tuple]:
    """(β1, β2, step α_t·√(1 − β2^t)/(1 − β1^t), lower bound, upper bound, 1/√t or 1)."""
    beta1_product = decayed(carry[0], hp.beta1)
    beta2_product = decayed(carry[1], hp.beta2)
    m_correction, _, v_scale = corrections(hp.bias_correction, beta1_product, beta2_product)
    alpha = step_size(hp, t)
    final = hp.final_lr * alpha / hp.lr
    lower = final * (1.0 - 1.0 / (hp.gamma * t + 1.0))
    upper = final * (1.0 + 1.0 / (hp.gamma * t))
    after = 1.0 / sqrt(float(t)) if hp.divide_by_sqrt_t else 1.0
    coeffs = (hp.beta1, hp.beta2, alpha * v_scale / m_correction, lower, upper, after)
    return coeffs, (beta1_product, beta2_product)


def state_names(hp: Any) -> tuple[str, ...]:
    if hp.second_moment == MAX:
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    return ("exp_avg", "exp_avg_sq")


def _multi_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, step, lower, upper, after = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    foreach_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
    rates = torch._foreach_sqrt(foreach_second_moment_(state, hp.second_moment == MAX))
    foreach_guard_(rates, hp.eps)
    torch._foreach_reciprocal_(rates)
    torch._foreach_mul_(rates, step)
    torch._foreach_clamp_min_(rates, lower)
    torch._foreach_clamp_max_(rates, upper)
    torch._foreach_mul_(rates, exp_avgs)
    torch._foreach_add_(params, rates, alpha=-after)


def _single_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, step, lower, upper, after = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    second = state["max_exp_avg_sq"] if hp.second_moment == MAX else exp_avg_sqs
    for i, param in enumerate(params):
        grad, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
        moments_(m, v, grad, beta1, beta2, param)
        if hp.second_moment == MAX:
            torch.maximum(second[i], v, out=second[i])
        rate = guard_(second[i].sqrt(), hp.eps).reciprocal_().mul_(per_param(step, param))
        rate.clamp_(per_param(lower, param), per_param(upper, param)).mul_(m)
        move_(param, rate, after)


@scalar_code
def adabound_scalar_init(hp: Any) -> tuple:
    """(m, v, v̂, β1^t, β2^t, unused...)."""
    return (0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)


@scalar_code
def adabound_scalar_step(state: tuple, hp: Any, g: float, t: int) -> tuple[tuple, float]:
    coeffs, carry = adabound_coefficients(hp, t, (state[3], state[4]))
    beta1, beta2, step, lower, upper, after = coeffs
    m = beta1 * state[0] + (1.0 - beta1) * g
    v = beta2 * state[1] + (1.0 - beta2) * g * g
    v_max = max(state[2], v) if hp.second_moment == MAX else v
    rate = step / guarded(sqrt(v_max), hp.eps, TINY64)
    rate = min(max(rate, lower), upper)
    return (m, v, v_max, carry[0], carry[1], 0.0, 0.0, 0.0), rate * m * after


FAMILY = NativeFamily(
    name="adabound",
    state_names=state_names,
    carry=(1.0, 1.0),
    coefficients=adabound_coefficients,
    single_tensor=_single_tensor,
    multi_tensor=_multi_tensor,
    scalar_init=adabound_scalar_init,
    scalar_step=adabound_scalar_step,
    decoupled_decay=True,
)
SPECS = tuple(
    OptimizerSpec(
        name=name,
        summary=summary,
        source="Luo et al., ICLR 2019, Algorithm 2",
        settings=AdaBoundSettings,
        impl=FAMILY,
        fixed={"second_moment": second_moment},
    )
    for name, second_moment, summary in (
        ("adabound", "ema", "AdaBound: Adam's step size clipped into bounds → final_lr"),
        ("amsbound", "max", "AMSBound: AdaBound on the max of v"),
    )
)
