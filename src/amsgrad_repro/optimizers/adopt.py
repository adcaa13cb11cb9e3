"""ADOPT (Taniguchi et al., NeurIPS 2024): the gradient is normalised by the *previous*
second moment before it enters the momentum.

* t = 1: v_1 = g_1², no move (m stays 0);
* t ≥ 2: m_t = β1·m_{t−1} + (1 − β1)·clip(g_t / max(√v_{t−1}, ε));  x_{t+1} = x_t − α_t·m_t;
  then v_t = β2·v_{t−1} + (1 − β2)·g_t².

``clip`` (fixed by the name) is the authors' ``clip_lambda`` as data. ``adopt`` runs their
code's default since November 2024 (github.com/iShohei220/adopt, ``src/adopt/adopt.py``):
``step**0.25``, where their ``step`` counts the moves, the first gradient (which only sets
v) being step 0, so move n = t − 1 is clipped to ±n^(1/4) (±1 at the first move).
pytorch-optimizer's ``ADOPT`` increments its step before the call, so its default clips
move n to ±(n+1)^(1/4), one step later (tested: equal to ours with ``clip_lambda(s) =
(s − 1)^0.25``). ``adopt-unclipped`` (``clip: none``) is Algorithm 1 of the paper, the
algorithm its convergence theorem states. Defaults are the official ones: α 1e-3,
β = (0.9, 0.9999), ε 1e-6.

``weight_decay`` λ is decoupled weight decay as the authors' ``decouple=True`` and
pytorch-optimizer's ``weight_decouple=True`` apply it: x ← x·(1 − α_t·λ) at every step,
the first (which only sets v) too (tested equal to pytorch-optimizer's); 0 by default, as
theirs. It is what today's recipes (the ResNet tasks) need beside AdamW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amsgrad_repro.optimizers.hparams import choice, real
from amsgrad_repro.optimizers.lazy_torch import torch
from amsgrad_repro.optimizers.moments import move_
from amsgrad_repro.optimizers.scalar import scalar_code, sqrt
from amsgrad_repro.optimizers.schedules import StepSize, step_size
from amsgrad_repro.optimizers.spec import NativeFamily, OptimizerSpec
from amsgrad_repro.optimizers.tensor_ops import (
    TensorState,
    complement,
    ema_square_,
    per_param,
)

if TYPE_CHECKING:
    from torch import Tensor

# The clip of the normalised gradient at move n = t − 1 (the module's docstring): none, or
# the authors' clip_lambda(step) = step**0.25. A new schedule is a new entry here and its
# bound in adopt_coefficients.
CLIPS: tuple[str, ...] = ("none", "step^0.25")
QUARTER_POWER = CLIPS.index("step^0.25")


@dataclass(frozen=True)
class AdoptSettings(StepSize):
    beta1: float = real(0.9, "β1", 0.0, 1.0, high_open=True, tunable=True, symbol="β1")
    beta2: float = real(0.9999, "β2", 0.0, 1.0, high_open=True, tunable=True, symbol="β2")
    eps: float = real(1e-6, "ε: the normaliser is max(√v, ε)", 0.0, low_open=True, symbol="ε")
    clip: str = choice(
        "step^0.25",
        CLIPS,
        "clip of the normalised gradient at move n = t − 1: none (the paper's Algorithm 1) "
        "or ±n^(1/4) (the authors' code's clip_lambda = step**0.25)",
        fixed=True,
    )
    weight_decay: float = real(
        0.0,
        "λ, decoupled weight decay: x ← x·(1 − α_t·λ) at every step (the authors' decouple)",
        0.0,
        symbol="λ",
        show_zero=False,
    )


@scalar_code
def adopt_coefficients(hp: Any, t: int, carry: tuple) -> tuple[tuple, tuple]:
    """(first step?, β1, β2, α_t, clip bound of move t − 1 (0 when unused), the decay's
    shrink factor 1 − α_t·λ)."""
    alpha = step_size(hp, t)
    bound = float(t - 1) ** 0.25 if hp.clip == QUARTER_POWER else 0.0
    return (t == 1, hp.beta1, hp.beta2, alpha, bound, 1.0 - alpha * hp.weight_decay), carry


def adopt_state_names(hp: Any) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_sq")


def _multi_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    first, beta1, beta2, alpha, bound, shrink = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    if hp.weight_decay:
        torch._foreach_mul_(params, shrink)
    if first:
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads)
        return
    denoms = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_clamp_min_(denoms, hp.eps)
    normed = torch._foreach_div(grads, denoms)
    if hp.clip == QUARTER_POWER:
        torch._foreach_clamp_min_(normed, -bound)
        torch._foreach_clamp_max_(normed, bound)
    torch._foreach_lerp_(exp_avgs, normed, 1.0 - beta1)
    torch._foreach_add_(params, exp_avgs, alpha=-alpha)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)


def _single_tensor(
    params: list[Tensor], grads: list[Tensor], state: TensorState, hp: Any, coeffs: tuple
) -> None:
    first, beta1, beta2, alpha, bound, shrink = coeffs
    exp_avgs, exp_avg_sqs = state["exp_avg"], state["exp_avg_sq"]
    for i, param in enumerate(params):
        grad, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
        if hp.weight_decay:
            param.mul_(per_param(shrink, param))
        if first:
            v.addcmul_(grad, grad)
            continue
        denom = v.sqrt().clamp_min_(hp.eps)
        normed = torch.div(grad, denom, out=denom)
        if hp.clip == QUARTER_POWER:
            normed.clamp_(-bound, bound)
        m.lerp_(normed, complement(beta1, param))
        move_(param, m, per_param(alpha, param))
        ema_square_(v, grad, beta2)


@scalar_code
def adopt_scalar_init(hp: Any) -> tuple:
    """(m, v, unused...)."""
    return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@scalar_code
def adopt_scalar_step(state: tuple, hp: Any, g: float, t: int) -> tuple[tuple, float]:
    coeffs, _ = adopt_coefficients(hp, t, ())
    first, beta1, beta2, alpha, bound, _ = coeffs  # no decay here: scalar_zero_only
    m, v = state[0], state[1]
    if first:
        return (m, g * g, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), 0.0
    normed = g / max(sqrt(v), hp.eps)
    if hp.clip == QUARTER_POWER:
        normed = min(max(normed, -bound), bound)
    m = beta1 * m + (1.0 - beta1) * normed
    v = beta2 * v + (1.0 - beta2) * g * g
    return (m, v, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), alpha * m


FAMILY = NativeFamily(
    name="adopt",
    state_names=adopt_state_names,
    carry=(),
    coefficients=adopt_coefficients,
    single_tensor=_single_tensor,
    multi_tensor=_multi_tensor,
    scalar_init=adopt_scalar_init,
    scalar_step=adopt_scalar_step,
    scalar_zero_only=("weight_decay",),
)
SPECS = tuple(
    OptimizerSpec(
        name=name,
        summary=summary,
        source=source,
        settings=AdoptSettings,
        impl=FAMILY,
        fixed={"clip": clip},
    )
    for name, clip, summary, source in (
        (
            "adopt",
            "step^0.25",
            "ADOPT as its authors' code runs it: normalised gradient clipped to ±n^(1/4)",
            "Taniguchi et al., NeurIPS 2024; github.com/iShohei220/adopt (clip since Nov 2024)",
        ),
        (
            "adopt-unclipped",
            "none",
            "ADOPT, paper form: gradient normalised by the previous v, no clip",
            "Taniguchi et al., NeurIPS 2024, Algorithm 1 (its theorem's algorithm)",
        ),
    )
)
