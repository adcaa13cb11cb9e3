"""Shared pieces of the successors' updates: their common hyper-parameters and the
bias-corrected coefficients of constant-β moment estimates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amsgrad_repro.optimizers.hparams import flag, real
from amsgrad_repro.optimizers.scalar import decayed, scalar_code, sqrt
from amsgrad_repro.optimizers.schedules import StepSize, step_size
from amsgrad_repro.optimizers.tensor_ops import is_number


@dataclass(frozen=True)
class MomentSettings(StepSize):
    """β1 and β2 of constant moment estimates, whether they are bias-corrected, and the
    decoupled weight decay that :class:`~amsgrad_repro.optimizers.torch_optimizer.DeclaredOptimizer`
    applies before the family's update (``NativeFamily.decoupled_decay``), so that the
    successors can run under a recipe that decays weights (the ResNets) as AdamW does."""

    beta1: float = real(0.9, "β1", 0.0, 1.0, high_open=True, tunable=True, symbol="β1")
    beta2: float = real(0.999, "β2", 0.0, 1.0, high_open=True, tunable=True, symbol="β2")
    bias_correction: bool = flag(True, "divide m by 1 − β1^t and v by 1 − β2^t")
    weight_decay: float = real(
        0.0,
        "λ, decoupled weight decay: x ← x·(1 − α_t·λ) before the step (0 in the papers' boxes)",
        0.0,
        symbol="λ",
        show_zero=False,
    )


@scalar_code
def corrections(enabled: bool, beta1_product: Any, beta2_product: Any) -> tuple:
    """(1 − Πβ1, 1 − Πβ2, √(1 − Πβ2)), or ones when bias correction is off."""
    if enabled:
        v_correction = 1.0 - beta2_product
        return (1.0 - beta1_product, v_correction, sqrt(v_correction))
    return (1.0, 1.0, 1.0)


@scalar_code
def moment_coefficients(hp: Any, t: int, carry: tuple) -> tuple[tuple, tuple]:
    """(β1, β2, α_t, 1 − β1^t, 1 − β2^t, √(1 − β2^t)) with the corrections 1 when off, and
    the products β1^t, β2^t carried to the next step."""
    beta1_product = decayed(carry[0], hp.beta1)
    beta2_product = decayed(carry[1], hp.beta2)
    m_correction, v_correction, v_scale = corrections(
        hp.bias_correction, beta1_product, beta2_product
    )
    alpha = step_size(hp, t)
    coeffs = (hp.beta1, hp.beta2, alpha, m_correction, v_correction, v_scale)
    return coeffs, (beta1_product, beta2_product)


def move_(param: Any, direction: Any, step: Any) -> None:
    """param ← param − step·direction."""
    if is_number(step):
        param.add_(direction, alpha=-step)
    else:
        param.sub_(direction * step)
