"""The step size α_t that every optimizer shares: its hyper-parameters and its scalar code.

t counts steps from 1; T is ``lr_horizon``, W = ``lr_warmup``·T rounded half up warm-up steps and
f = ``lr_final``:

* ``constant``:        α_t = α
* ``inv_sqrt``:        α_t = α/√t (the paper's theory and its logistic regression)
* ``inv_sqrt_affine``: α_t = α/√(1 + c·t) (ADOPT's toy experiment, c = ``lr_decay``)
* ``warmup_cosine``:   α_t = α·t/W for t ≤ W, then α·(f + (1 − f)·(1 + cos(π·p))/2) with
  p = (t − W)/(T − W), so α_T = f·α (linear warm-up, then cosine decay: Loshchilov &
  Hutter's SGDR without restarts, Goyal et al.'s warm-up; today's ResNet recipe)
* ``warmup_linear``:   the same warm-up, then α·(f + (1 − f)·(1 − p))

After T (a horizon shorter than the run) the decays hold f·α. The warm-up reaches α at
step W (not at W + 1 as a ramp from 0 would: a step of size 0 is a wasted step).

T = 0, the default, is "the run's total steps": the trainer and the synthetic runner fill
it in (:func:`with_horizon`) before the optimizer is built, and run.json records the T a
run used. A schedule that needs T and finds 0 is refused (:func:`check_horizon`).

Native optimizers apply α_t in their own update; ``torch.optim`` classes and plug-ins get
it from a ``LambdaLR`` (``optimizers.build``): one formula, :func:`schedule_factor`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from amsgrad_repro.optimizers.hparams import HParamError, choice, integer, real
from amsgrad_repro.optimizers.scalar import scalar_code

LR_SCHEDULES: tuple[str, ...] = (
    "constant",
    "inv_sqrt",
    "inv_sqrt_affine",
    "warmup_cosine",
    "warmup_linear",
)
CONSTANT = LR_SCHEDULES.index("constant")
INV_SQRT = LR_SCHEDULES.index("inv_sqrt")
INV_SQRT_AFFINE = LR_SCHEDULES.index("inv_sqrt_affine")
WARMUP_COSINE = LR_SCHEDULES.index("warmup_cosine")
WARMUP_LINEAR = LR_SCHEDULES.index("warmup_linear")
# The schedules that read the horizon T.
HORIZON_SCHEDULES: frozenset[str] = frozenset({"warmup_cosine", "warmup_linear"})


@dataclass(frozen=True)
class StepSize:
    """Fields every optimizer's settings start with."""

    lr: float = real(1e-3, "α, the step size", 0.0, None, low_open=True, tunable=True)
    lr_schedule: str = choice(
        "constant",
        LR_SCHEDULES,
        "α_t: α, α/√t (inv_sqrt), α/√(1 + c·t) (inv_sqrt_affine), or a linear warm-up then "
        "a cosine (warmup_cosine) or linear (warmup_linear) decay to lr_final·α at lr_horizon",
    )
    lr_decay: float = real(0.01, "c of inv_sqrt_affine", 0.0, None)
    lr_warmup: float = real(
        0.0,
        "fraction of lr_horizon spent warming up linearly (warmup_*)",
        0.0,
        1.0,
        high_open=True,
    )
    lr_final: float = real(0.0, "α_T/α, the fraction of α left at lr_horizon (warmup_*)", 0.0, 1.0)
    lr_horizon: int = integer(
        0, "T, the last step of a warmup_* schedule; 0: the run's total steps", 0
    )


@scalar_code
def schedule_factor(
    schedule: int, decay: float, warmup: float, final: float, horizon: int, t: int
) -> float:
    """α_t/α for step t ≥ 1 (``schedule`` is an index into LR_SCHEDULES)."""
    if schedule == INV_SQRT:
        return 1.0 / t**0.5
    if schedule == INV_SQRT_AFFINE:
        return 1.0 / (1.0 + decay * t) ** 0.5
    if schedule == WARMUP_COSINE or schedule == WARMUP_LINEAR:  # noqa: SIM109 - numba
        ramp = int(warmup * horizon + 0.5)  # W, rounded half up
        if t <= ramp:
            return t / ramp
        p = min(1.0, (t - ramp) / max(horizon - ramp, 1))
        if schedule == WARMUP_COSINE:
            return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * p))
        return final + (1.0 - final) * (1.0 - p)
    return 1.0


@scalar_code
def step_size(hp: Any, t: int) -> Any:
    """α_t of the packed settings ``hp`` (α may hold one value per stacked member)."""
    factor = schedule_factor(
        hp.lr_schedule, hp.lr_decay, hp.lr_warmup, hp.lr_final, hp.lr_horizon, t
    )
    return hp.lr * factor


def lr_factor(settings: Any, t: int) -> float:
    """α_t / α of resolved settings, the factor a LambdaLR applies at step t (≥ 1)."""
    return schedule_factor(
        LR_SCHEDULES.index(settings.lr_schedule),
        settings.lr_decay,
        settings.lr_warmup,
        settings.lr_final,
        settings.lr_horizon,
        t,
    )


def needs_horizon(settings: Any) -> bool:
    return getattr(settings, "lr_schedule", "constant") in HORIZON_SCHEDULES


def with_horizon(settings: Any, total_steps: int) -> Any:
    """``settings`` with T = ``total_steps`` when its schedule reads T and none was set."""
    if needs_horizon(settings) and settings.lr_horizon == 0:
        return dataclasses.replace(settings, lr_horizon=int(total_steps))
    return settings


def check_horizon(settings: Any) -> None:
    """Refuse a warmup_* schedule without its horizon (it would divide by zero steps)."""
    if needs_horizon(settings) and settings.lr_horizon < 1:
        raise HParamError(
            f"lr_schedule {settings.lr_schedule} needs lr_horizon, the schedule's last step: "
            "the trainer sets it to the run's total steps; set it (≥ 1) when building an "
            "optimizer yourself (optimizers.schedules.with_horizon)"
        )
