"""Yogi (Zaheer, Reddi, Sachan, Kale & Kumar, NeurIPS 2018): an additive second moment
that can shrink as well as grow.

m_t = β1·m_{t−1} + (1 − β1)·g_t;  v_t = v_{t−1} − (1 − β2)·sign(v_{t−1} − g_t²)·g_t²;
x_{t+1} = x_t − α_t·m_t/(√v_t + ε), with v_0 = ``initial_accumulator``: the paper's
Algorithm 2 (no bias correction, the default here). pytorch-optimizer's ``Yogi`` (and
TensorFlow Addons') bias-correct m and v and start m at the accumulator too:
``bias_correction: true`` gives their step up to m_0 (tested to differ from the box).
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
    complement,
    corrected_sqrt,
    descend_,
    foreach_corrected_sqrt,
    is_number,
    per_param,
)

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class YogiSettings(MomentSettings):
    bias_correction: bool = flag(False, "divide m by 1 − β1^t and v by 1 − β2^t (not in the box)")
    eps: float = real(1e-3, "ε added to √v", 0.0, symbol="ε")
    initial_accumulator: float = real(1e-6, "v_0", 0.0)


def state_names(hp: Any) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_sq")


def init_state(name: str, param: Tensor, hp: Any) -> Tensor:
    fill = hp.initial_accumulator if name == "exp_avg_sq" else 0.0
    return torch.full_like(param, fill, memory_format=torch.preserve_format)


def _multi_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    squares = torch._foreach_mul(grads, grads)
    signs = torch._foreach_sub(exp_avg_sqs, squares)
    torch._foreach_sign_(signs)
    torch._foreach_addcmul_(exp_avg_sqs, signs, squares, value=-(1.0 - beta2))
    denoms = foreach_corrected_sqrt(exp_avg_sqs, v_scale, hp.eps)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-(alpha / m_correction))


def _single_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    step = alpha / m_correction
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    for i, param in enumerate(params):
        grad, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
        m.lerp_(grad, complement(beta1, param))
        square = grad * grad
        sign = (v - square).sign_()
        if is_number(beta2):
            v.addcmul_(sign, square, value=-(1.0 - beta2))
        else:
            v.addcmul_(sign, square * complement(beta2, param), value=-1.0)
        descend_(param, m, corrected_sqrt(v, v_scale, hp.eps, param), per_param(step, param))


@scalar_code
def yogi_scalar_init(hp: Any) -> tuple:
    """(m, v, β1^t, β2^t, unused...)."""
    return (0.0, hp.initial_accumulator, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)


@scalar_code
def yogi_scalar_step(state: tuple, hp: Any, g: float, t: int) -> tuple[tuple, float]:
    coeffs, carry = moment_coefficients(hp, t, (state[2], state[3]))
    beta1, beta2, alpha, m_correction, _, v_scale = coeffs
    m = beta1 * state[0] + (1.0 - beta1) * g
    square = g * g
    gap = state[1] - square
    sign = 1.0 if gap > 0.0 else (-1.0 if gap < 0.0 else 0.0)
    v = state[1] - (1.0 - beta2) * sign * square
    denom = guarded(sqrt(v) / v_scale, hp.eps, TINY64)
    state = (m, v, carry[0], carry[1], 0.0, 0.0, 0.0, 0.0)
    return state, alpha / m_correction * m / denom


SPEC = OptimizerSpec(
    name="yogi",
    summary="Yogi: additive, sign-controlled second moment",
    source="Zaheer et al., NeurIPS 2018, Algorithm 2",
    settings=YogiSettings,
    impl=NativeFamily(
        name="yogi",
        state_names=state_names,
        carry=(1.0, 1.0),
        coefficients=moment_coefficients,
        single_tensor=_single_tensor,
        multi_tensor=_multi_tensor,
        scalar_init=yogi_scalar_init,
        scalar_step=yogi_scalar_step,
        init_state=init_state,
        decoupled_decay=True,
    ),
    defaults={"lr": 1e-2},
)
