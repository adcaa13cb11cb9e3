"""AdaBelief (Zhuang et al., NeurIPS 2020): the second moment tracks the *belief*
(g − m)², not g².

m_t = β1·m_{t−1} + (1 − β1)·g_t;  s_t = β2·s_{t−1} + (1 − β2)·(g_t − m_t)² + ε;
x_{t+1} = x_t − α_t·m̂_t/(√ŝ_t + ε) with m̂ = m/(1 − β1^t), ŝ = s/(1 − β2^t): the paper's
Algorithm 2, which is also pytorch-optimizer's ``AdaBelief(rectify=False)`` (tested). The
authors' package (adabelief-pytorch 0.2) defaults to a rectified, decoupled-decay variant:
the decoupled decay is ``weight_decay`` here (as every successor's, tested against
pytorch-optimizer's ``weight_decouple``); the rectification is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amsgrad_repro.optimizers.hparams import real
from amsgrad_repro.optimizers.lazy_torch import torch
from amsgrad_repro.optimizers.moments import MomentSettings, moment_coefficients
from amsgrad_repro.optimizers.scalar import TINY64, guarded, scalar_code, sqrt
from amsgrad_repro.optimizers.spec import NativeFamily, OptimizerSpec
from amsgrad_repro.optimizers.tensor_ops import (
    TensorState,
    complement,
    corrected_sqrt,
    descend_,
    ema_square_,
    foreach_corrected_sqrt,
    per_param,
)

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class AdaBeliefSettings(MomentSettings):
    eps: float = real(1e-16, "ε, added to s and to √ŝ", 0.0, symbol="ε")


def state_names(hp: Any) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_var")


def _multi_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    exp_avgs, exp_avg_vars = state["exp_avg"], state["exp_avg_var"]
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    residuals = torch._foreach_sub(grads, exp_avgs)
    torch._foreach_mul_(exp_avg_vars, beta2)
    torch._foreach_addcmul_(exp_avg_vars, residuals, residuals, value=1.0 - beta2)
    torch._foreach_add_(exp_avg_vars, hp.eps)
    denoms = foreach_corrected_sqrt(exp_avg_vars, v_scale, hp.eps)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-(alpha / m_correction))


def _single_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    step = alpha / m_correction
    exp_avgs, exp_avg_vars = state["exp_avg"], state["exp_avg_var"]
    for i, param in enumerate(params):
        grad, m, s = grads[i], exp_avgs[i], exp_avg_vars[i]
        m.lerp_(grad, complement(beta1, param))
        ema_square_(s, grad - m, beta2)
        s.add_(hp.eps)
        descend_(param, m, corrected_sqrt(s, v_scale, hp.eps, param), per_param(step, param))


@scalar_code
def adabelief_scalar_init(hp: Any) -> tuple:
    """(m, s, β1^t, β2^t, unused...)."""
    return (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)


@scalar_code
def adabelief_scalar_step(state: tuple, hp: Any, g: float, t: int) -> tuple[tuple, float]:
    coeffs, carry = moment_coefficients(hp, t, (state[2], state[3]))
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    m = beta1 * state[0] + (1.0 - beta1) * g
    s = beta2 * state[1] + (1.0 - beta2) * (g - m) * (g - m) + hp.eps
    denom = guarded(sqrt(s) / v_scale, hp.eps, TINY64)
    state = (m, s, carry[0], carry[1], 0.0, 0.0, 0.0, 0.0)
    return state, alpha / m_correction * m / denom


SPEC = OptimizerSpec(
    name="adabelief",
    summary="AdaBelief: second moment of the belief (g − m)²",
    source="Zhuang et al., NeurIPS 2020, Algorithm 2",
    settings=AdaBeliefSettings,
    impl=NativeFamily(
        name="adabelief",
        state_names=state_names,
        carry=(1.0, 1.0),
        coefficients=moment_coefficients,
        single_tensor=_single_tensor,
        multi_tensor=_multi_tensor,
        scalar_init=adabelief_scalar_init,
        scalar_step=adabelief_scalar_step,
        decoupled_decay=True,
    ),
)
