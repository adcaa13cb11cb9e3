"""The step size α_t that every optimizer shares: its hyper-parameters and its scalar code.

* ``constant``:        α_t = α
* ``inv_sqrt``:        α_t = α/√t (the paper's theory and its logistic regression)
* ``inv_sqrt_affine``: α_t = α/√(1 + c·t) (ADOPT's toy experiment, c = ``lr_decay``)

t counts steps from 1. Native optimizers apply α_t in their own update; ``torch.optim``
classes and plug-ins get it from a ``LambdaLR`` (``optimizers.build``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amsgrad_repro.optimizers.hparams import choice, real
from amsgrad_repro.optimizers.scalar import scalar_code

LR_SCHEDULES: tuple[str, ...] = ("constant", "inv_sqrt", "inv_sqrt_affine")
CONSTANT = LR_SCHEDULES.index("constant")
INV_SQRT = LR_SCHEDULES.index("inv_sqrt")
INV_SQRT_AFFINE = LR_SCHEDULES.index("inv_sqrt_affine")


@dataclass(frozen=True)
class StepSize:
    """Fields every optimizer's settings start with."""

    lr: float = real(1e-3, "α, the step size", 0.0, None, low_open=True, tunable=True)
    lr_schedule: str = choice(
        "constant", LR_SCHEDULES, "α_t: α, α/√t (inv_sqrt) or α/√(1 + c·t) (inv_sqrt_affine)"
    )
    lr_decay: float = real(0.01, "c of inv_sqrt_affine", 0.0, None)


@scalar_code
def step_size(lr: Any, schedule: int, decay: float, t: int) -> Any:
    """α_t for step t ≥ 1 (``schedule`` is an index into LR_SCHEDULES)."""
    if schedule == INV_SQRT:
        return lr / t**0.5
    if schedule == INV_SQRT_AFFINE:
        return lr / (1.0 + decay * t) ** 0.5
    return lr


def lr_factor(settings: Any, t: int) -> float:
    """α_t / α, the factor a LambdaLR applies at step t (≥ 1)."""
    return step_size(1.0, LR_SCHEDULES.index(settings.lr_schedule), settings.lr_decay, t)
