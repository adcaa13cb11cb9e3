"""Adam, AMSGrad and AdamNC exactly as Reddi, Kale & Kumar (ICLR 2018) define them, and
AMSGrad's optax form; one update with the variants as data.

Per coordinate, with m_0 = v_0 = v̂_0 = 0 and α_t, β1t from their schedules:

* m_t = β1t·m_{t−1} + (1 − β1t)·g_t,  v_t = β2t·v_{t−1} + (1 − β2t)·g_t²
* ``second_moment`` (fixed by the name): ``ema`` v̂_t = v_t (Adam); ``max`` v̂_t =
  max(v̂_{t−1}, v_t), the max of the *raw* EMA (AMSGrad, paper form); ``max_corrected``
  v̂_t = max(v̂_{t−1}, v_t/(1 − Πβ2)), the max of the *bias-corrected* v (older optax);
  ``mean`` β2t = 1 − 1/t, so v_t is the mean of g_1²…g_t² (AdamNC)
* x_{t+1} = x_t·(1 − α_t·λ) − α_t/(1 − Πβ1) · m_t / (√v̂_t/√(1 − Πβ2) + ε), the
  corrections being 1 unless ``bias_correction`` (off in the paper, as is ε); for
  ``max_corrected`` v̂ is already corrected. λ = ``weight_decay`` is decoupled weight decay
  (Loshchilov & Hutter, ICLR 2019), 0 in the paper: the shrink uses α_t with its schedule,
  as ``torch.optim.AdamW`` does. The products Πβ make the corrections exact under any β
  schedule and equal to 1 for AdamNC, whose v is an unbiased mean.

``bias_correction: true, eps: 1e-8`` on ``amsgrad`` is ``torch.optim.Adam(amsgrad=True)``
(max of the raw v divided by the *current* correction; pytorch issue #142323), tested equal;
``torch-amsgrad`` runs that class itself; with ``weight_decay: λ`` the same settings are
``torch.optim.AdamW(amsgrad=True, weight_decay=λ)`` (tested equal). The compiled 1-D
kernel's scalar step has no x to shrink, so a run with λ > 0 takes the generic path there.
Projection onto a feasible box is the problem's business, not the optimizer's (the
synthetic runner clips after every step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amsgrad_repro.optimizers.hparams import choice, flag, real
from amsgrad_repro.optimizers.lazy_torch import torch
from amsgrad_repro.optimizers.moments import corrections
from amsgrad_repro.optimizers.scalar import TINY64, decayed, guarded, scalar_code, sqrt
from amsgrad_repro.optimizers.schedules import StepSize, step_size
from amsgrad_repro.optimizers.spec import NativeFamily, OptimizerSpec
from amsgrad_repro.optimizers.tensor_ops import (
    TensorState,
    corrected_sqrt,
    descend_,
    foreach_corrected_sqrt,
    foreach_moments_,
    foreach_second_moment_,
    guard_,
    moments_,
    per_param,
)

if TYPE_CHECKING:
    from torch import Tensor

BETA1_SCHEDULES: tuple[str, ...] = ("constant", "exp_decay", "inv_t")
EXP_DECAY = BETA1_SCHEDULES.index("exp_decay")
INV_T = BETA1_SCHEDULES.index("inv_t")
SECOND_MOMENTS: tuple[str, ...] = ("ema", "max", "max_corrected", "mean")
MAX = SECOND_MOMENTS.index("max")
MAX_CORRECTED = SECOND_MOMENTS.index("max_corrected")
MEAN = SECOND_MOMENTS.index("mean")


@dataclass(frozen=True)
class AdamSettings(StepSize):
    beta1: float = real(0.9, "β1", 0.0, 1.0, high_open=True, tunable=True, symbol="β1")
    beta2: float = real(
        0.99, "β2 (AdamNC ignores it)", 0.0, 1.0, high_open=True, tunable=True, symbol="β2"
    )
    beta1_schedule: str = choice(
        "constant", BETA1_SCHEDULES, "β1t: β1 (all experiments), β1·λ^(t−1) or β1/t (theory)"
    )
    beta1_decay: float = real(1.0, "λ of beta1_schedule exp_decay", 0.0, 1.0, low_open=True)
    bias_correction: bool = flag(
        False, "divide m and v by 1 − Πβ (off in the paper)", symbol="bias-corrected"
    )
    eps: float = real(
        0.0,
        "ε added to √v̂ (0 in the paper: a zero denominator gives a zero step)",
        0.0,
        symbol="ε",
    )
    weight_decay: float = real(
        0.0,
        "λ, decoupled weight decay: x ← x·(1 − α_t·λ) before the step (AdamW; 0 in the paper)",
        0.0,
        symbol="λ",
        show_zero=False,
    )
    second_moment: str = choice(
        "ema",
        SECOND_MOMENTS,
        "v̂_t: v_t, max of raw v, max of corrected v, or mean of g²",
        fixed=True,
    )


@scalar_code
def beta1_at(beta1: Any, schedule: int, decay: float, t: int) -> Any:
    """β1t: constant, β1·λ^(t−1) or β1/t."""
    if schedule == EXP_DECAY:
        return beta1 * decay ** (t - 1)
    if schedule == INV_T:
        return beta1 / t
    return beta1


@scalar_code
def adam_coefficients(hp: Any, t: int, carry: tuple[Any, Any]) -> tuple[tuple, tuple]:
    """(β1t, β2t, step = α_t/(1 − Πβ1), v correction 1 − Πβ2, its square root, the
    weight-decay shrink 1 − α_t·λ), and the products Πβ1, Πβ2 carried to the next step."""
    beta1_product, beta2_product = carry
    beta1 = beta1_at(hp.beta1, hp.beta1_schedule, hp.beta1_decay, t)
    beta2 = 1.0 - 1.0 / t if hp.second_moment == MEAN else hp.beta2
    beta1_product = decayed(beta1_product, beta1)
    beta2_product = decayed(beta2_product, beta2)
    m_correction, v_correction, v_scale = corrections(
        hp.bias_correction, beta1_product, beta2_product
    )
    alpha = step_size(hp, t)
    coeffs = (
        beta1,
        beta2,
        alpha / m_correction,
        v_correction,
        v_scale,
        1.0 - alpha * hp.weight_decay,
    )
    return coeffs, (beta1_product, beta2_product)


def state_names(hp: Any) -> tuple[str, ...]:
    if hp.second_moment in (MAX, MAX_CORRECTED):
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    return ("exp_avg", "exp_avg_sq")


def _single_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, step, v_correction, v_scale, shrink = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    max_sqs = state.get("max_exp_avg_sq")
    for i, param in enumerate(params):
        grad, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
        if hp.weight_decay:
            param.mul_(per_param(shrink, param))
        moments_(m, v, grad, beta1, beta2, param)
        if hp.second_moment == MAX_CORRECTED:
            torch.maximum(max_sqs[i], v / per_param(v_correction, param), out=max_sqs[i])
            denom = guard_(max_sqs[i].sqrt(), hp.eps)
        else:
            if hp.second_moment == MAX:
                torch.maximum(max_sqs[i], v, out=max_sqs[i])
                v = max_sqs[i]
            denom = corrected_sqrt(v, v_scale, hp.eps, param)
        descend_(param, m, denom, per_param(step, param))


def _multi_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    beta1, beta2, step, v_correction, v_scale, shrink = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    if hp.weight_decay:
        torch._foreach_mul_(params, shrink)
    foreach_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
    if hp.second_moment == MAX_CORRECTED:
        max_sqs = state["max_exp_avg_sq"]
        torch._foreach_maximum_(max_sqs, torch._foreach_div(exp_avg_sqs, v_correction))
        denoms = foreach_corrected_sqrt(max_sqs, 1.0, hp.eps)
    else:
        second = foreach_second_moment_(state, hp.second_moment == MAX)
        denoms = foreach_corrected_sqrt(second, v_scale, hp.eps)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-step)


@scalar_code
def adam_scalar_init(hp: Any) -> tuple:
    """(m, v, v̂, Πβ1, Πβ2, unused...)."""
    return (0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)


@scalar_code
def adam_scalar_step(state: tuple, hp: Any, g: float, t: int) -> tuple[tuple, float]:
    coeffs, carry = adam_coefficients(hp, t, (state[3], state[4]))
    beta1, beta2, step, v_correction, v_scale, _ = coeffs  # λ > 0 never runs here
    m = beta1 * state[0] + (1.0 - beta1) * g
    v = beta2 * state[1] + (1.0 - beta2) * g * g
    v_max = state[2]
    if hp.second_moment == MAX_CORRECTED:
        v_max = max(v_max, v / v_correction)
        denom = guarded(sqrt(v_max), hp.eps, TINY64)
    elif hp.second_moment == MAX:
        v_max = max(v_max, v)
        denom = guarded(sqrt(v_max) / v_scale, hp.eps, TINY64)
    else:
        denom = guarded(sqrt(v) / v_scale, hp.eps, TINY64)
    return (m, v, v_max, carry[0], carry[1], 0.0, 0.0, 0.0), step * m / denom


FAMILY = NativeFamily(
    name="adam",
    state_names=state_names,
    carry=(1.0, 1.0),
    coefficients=adam_coefficients,
    single_tensor=_single_tensor,
    multi_tensor=_multi_tensor,
    scalar_init=adam_scalar_init,
    scalar_step=adam_scalar_step,
    scalar_zero_only=("weight_decay",),
)
PAPER = "Reddi, Kale & Kumar, ICLR 2018"


def _spec(name: str, summary: str, source: str, second_moment: str, **defaults: Any):
    return OptimizerSpec(
        name=name,
        summary=summary,
        source=source,
        settings=AdamSettings,
        impl=FAMILY,
        defaults=defaults,
        fixed={"second_moment": second_moment},
        group="paper",
    )


SPECS = (
    _spec("adam", "Adam, paper form: no bias correction, no ε", f"{PAPER}, Algorithm 1", "ema"),
    _spec(
        "amsgrad",
        "AMSGrad, paper form: max of the raw v, no correction, no ε",
        f"{PAPER}, Algorithm 2",
        "max",
    ),
    _spec("adamnc", "AdamNC: β2t = 1 − 1/t (v = mean of g²)", f"{PAPER}, Section 4", "mean"),
    _spec(
        "optax-amsgrad",
        "AMSGrad, optax form: max of the bias-corrected v, ε",
        "optax.amsgrad before optax #1389",
        "max_corrected",
        bias_correction=True,
        eps=1e-8,
        beta2=0.999,
    ),
)
