"""The scalar side of the paper's update: α_t, β1t, β2t and bias corrections.

Kept free of torch so the compiled synthetic kernel and the CLI can use it without paying
for a torch import; :mod:`amsgrad_repro.optim` builds the tensor update on top of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Variant = Literal["adam", "amsgrad", "adamnc"]
LrSchedule = Literal["constant", "inv_sqrt"]
Beta1Schedule = Literal["constant", "exp_decay", "inv_t"]

VARIANTS: tuple[str, ...] = ("adam", "amsgrad", "adamnc")
LR_SCHEDULES: tuple[str, ...] = ("constant", "inv_sqrt")
BETA1_SCHEDULES: tuple[str, ...] = ("constant", "exp_decay", "inv_t")


@dataclass(frozen=True)
class StepCoefficients:
    """The scalars of step t (α_t, β1t, β2t and the running products Πβ for bias
    correction); the same formulas drive the compiled 1-D kernel in ``synthetic``."""

    alpha: float
    beta1: float
    beta2: float
    beta1_product: float
    beta2_product: float
    m_correction: float
    v_correction: float


def step_size(lr: float, lr_schedule: str, t: int) -> float:
    """α_t: constant α, or α/√t (the paper's theory and its logistic regression)."""
    return lr / math.sqrt(t) if lr_schedule == "inv_sqrt" else lr


def beta1_at(beta1: float, schedule: str, decay: float, t: int) -> float:
    """β1t: constant (all experiments), β1·λ^(t−1), or β1/t (the convergence theorems)."""
    if schedule == "exp_decay":
        return beta1 * decay ** (t - 1)
    if schedule == "inv_t":
        return beta1 / t
    return beta1


def beta2_at(variant: str, beta2: float, t: int) -> float:
    """AdamNC's β2t = 1 − 1/t makes v_t the plain mean of g_1²…g_t²."""
    return 1.0 - 1.0 / t if variant == "adamnc" else beta2


def coefficients(
    t: int,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    variant: str,
    lr_schedule: str,
    beta1_schedule: str,
    beta1_decay: float,
    bias_correction: bool,
    beta1_product: float,
    beta2_product: float,
) -> StepCoefficients:
    """Scalars for step t given Π_{k<t} β_k. The products make the bias correction exact
    for any β schedule: 1 − β^t for constant β, and 1 for AdamNC, whose v is already an
    unbiased mean."""
    b1 = beta1_at(beta1, beta1_schedule, beta1_decay, t)
    b2 = beta2_at(variant, beta2, t)
    beta1_product *= b1
    beta2_product *= b2
    if bias_correction:
        m_correction, v_correction = 1.0 - beta1_product, 1.0 - beta2_product
    else:
        m_correction = v_correction = 1.0
    return StepCoefficients(
        alpha=step_size(lr, lr_schedule, t),
        beta1=b1,
        beta2=b2,
        beta1_product=beta1_product,
        beta2_product=beta2_product,
        m_correction=m_correction,
        v_correction=v_correction,
    )
