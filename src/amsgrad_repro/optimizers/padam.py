"""Padam (Chen, Zhou, Tang, Yang, Cao & Gu, IJCAI 2020): AMSGrad with a partial exponent.

Paper, Algorithm 1 (the default here): m_t, v_t as Adam, v̂_t = max(v̂_{t−1}, v_t),
x_{t+1} = x_t − α_t·m_t/v̂_t^p with p ∈ (0, 1/2] (p = 1/2 is AMSGrad; the paper recommends
1/8). The authors' code adds ε = 1e-8 to √v̂ before the power and multiplies α by
√(1 − β2^t)/(1 − β1^t) (the square root even though the exponent is 2p):
``bias_correction: true, eps: 1e-8``. pytorch-optimizer's ``PAdam`` is that code without
the max (``amsgrad: false``); both are tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amsgrad_repro.optimizers.hparams import flag, real
from amsgrad_repro.optimizers.lazy_torch import torch
from amsgrad_repro.optimizers.moments import MomentSettings, moment_coefficients
from amsgrad_repro.optimizers.scalar import TINY64, guarded, scalar_code, sqrt
from amsgrad_repro.optimizers.spec import NativeFamily, OptimizerSpec
from amsgrad_repro.optimizers.tensor_ops import (
    TensorState,
    descend_,
    foreach_guard_,
    foreach_moments_,
    foreach_second_moment_,
    guard_,
    moments_,
    per_param,
)

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class PadamSettings(MomentSettings):
    bias_correction: bool = flag(False, "multiply α by √(1 − β2^t)/(1 − β1^t) (the code's form)")
    partial: float = real(0.125, "p, the partial exponent", 0.0, 0.5, low_open=True, symbol="p")
    eps: float = real(0.0, "ε added to √v̂ before the power (0 in the paper)", 0.0, symbol="ε")
    amsgrad: bool = flag(True, "v̂ = max(v̂, v) (the paper); false: v̂ = v")


def state_names(hp: Any) -> tuple[str, ...]:
    if hp.amsgrad:
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    return ("exp_avg", "exp_avg_sq")


def _multi_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    foreach_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
    denoms = torch._foreach_sqrt(foreach_second_moment_(state, hp.amsgrad))
    foreach_guard_(denoms, hp.eps)
    torch._foreach_pow_(denoms, 2.0 * hp.partial)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-(alpha * v_scale / m_correction))


def _single_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    step = alpha * v_scale / m_correction
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    second = state["max_exp_avg_sq"] if hp.amsgrad else exp_avg_sqs
    for i, param in enumerate(params):
        grad, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
        moments_(m, v, grad, beta1, beta2, param)
        if hp.amsgrad:
            torch.maximum(second[i], v, out=second[i])
        denom = guard_(second[i].sqrt(), hp.eps).pow_(2.0 * hp.partial)
        descend_(param, m, denom, per_param(step, param))


@scalar_code
def padam_scalar_init(hp: Any) -> tuple:
    """(m, v, v̂, β1^t, β2^t, unused...)."""
    return (0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)


@scalar_code
def padam_scalar_step(state: tuple, hp: Any, g: float, t: int) -> tuple[tuple, float]:
    coeffs, carry = moment_coefficients(hp, t, (state[3], state[4]))
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    m = beta1 * state[0] + (1.0 - beta1) * g
    v = beta2 * state[1] + (1.0 - beta2) * g * g
    v_max = max(state[2], v) if hp.amsgrad else v
    denom = guarded(sqrt(v_max), hp.eps, TINY64) ** (2.0 * hp.partial)
    state = (m, v, v_max, carry[0], carry[1], 0.0, 0.0, 0.0)
    return state, alpha * v_scale / m_correction * m / denom


SPEC = OptimizerSpec(
    name="padam",
    summary="Padam: AMSGrad with partial exponent p",
    source="Chen et al., IJCAI 2020, Algorithm 1",
    settings=PadamSettings,
    impl=NativeFamily(
        name="padam",
        state_names=state_names,
        carry=(1.0, 1.0),
        coefficients=moment_coefficients,
        single_tensor=_single_tensor,
        multi_tensor=_multi_tensor,
        scalar_init=padam_scalar_init,
        scalar_step=padam_scalar_step,
        decoupled_decay=True,
    ),
    defaults={"lr": 0.1},
)
