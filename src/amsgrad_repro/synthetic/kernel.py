"""A compiled loop running the paper's Adam family on a 1-D linear problem.

It is the same update as :func:`amsgrad_repro.optim.paper_adam_update` (same flags, same
order of operations) written for scalars, so that 10^7 steps take well under a second.
``tests/test_synthetic.py`` runs it against the ``torch.optim`` classes for 10^4+ steps and
requires agreement to 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from amsgrad_repro.schedules import BETA1_SCHEDULES, VARIANTS
from amsgrad_repro.synthetic.problems import gradient


@dataclass(frozen=True)
class KernelResult:
    """Iterates and average regret at the recorded steps, plus exact final values."""

    steps: np.ndarray
    x: np.ndarray
    avg_regret: np.ndarray
    final_x: float
    final_avg_regret: float


@numba.njit(cache=True)
def _run(
    problem: int,
    big: float,
    seed: int,
    steps: int,
    x1: float,
    variant: int,
    lr: float,
    inv_sqrt: bool,
    beta1: float,
    beta2: float,
    beta1_schedule: int,
    beta1_decay: float,
    bias_correction: bool,
    eps: float,
    low: float,
    high: float,
    record: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    np.random.seed(seed)
    x = x1
    m = 0.0
    v = 0.0
    v_max = 0.0
    beta1_product = 1.0
    beta2_product = 1.0
    loss_sum = 0.0  # Σ f_t(x_t) = Σ g_t·x_t
    grad_sum = 0.0  # G_t = Σ g_t; the best fixed x in the box has loss min(G·low, G·high)
    xs = np.empty(record.size)
    regrets = np.empty(record.size)
    next_record = 0
    for t in range(1, steps + 1):
        g = gradient(problem, t, big)
        loss_sum += g * x
        grad_sum += g
        # Step coefficients (schedules.coefficients).
        if beta1_schedule == 1:
            b1 = beta1 * beta1_decay ** (t - 1)
        elif beta1_schedule == 2:
            b1 = beta1 / t
        else:
            b1 = beta1
        b2 = 1.0 - 1.0 / t if variant == 2 else beta2
        beta1_product *= b1
        beta2_product *= b2
        if bias_correction:
            m_corr = 1.0 - beta1_product
            v_corr = 1.0 - beta2_product
        else:
            m_corr = 1.0
            v_corr = 1.0
        alpha = lr / math.sqrt(t) if inv_sqrt else lr
        # The update (optim.paper_adam_update).
        m = m * b1 + (1.0 - b1) * g
        v = v * b2 + (1.0 - b2) * g * g
        second = v
        if variant == 1:
            if v > v_max:
                v_max = v
            second = v_max
        denom = math.sqrt(second / v_corr) + eps
        direction = m / (m_corr * denom) if denom > 0.0 else 0.0
        x = x - alpha * direction
        if x < low:
            x = low
        elif x > high:
            x = high
        if next_record < record.size and record[next_record] == t:
            best = grad_sum * low if grad_sum > 0.0 else grad_sum * high
            xs[next_record] = x
            regrets[next_record] = (loss_sum - best) / t
            next_record += 1
    best = grad_sum * low if grad_sum > 0.0 else grad_sum * high
    return xs, regrets, x, (loss_sum - best) / steps


def record_schedule(steps: int, points: int) -> np.ndarray:
    """About ``points`` steps: half log-spaced (the early transient), half evenly spaced
    (the long run), always including the first and last step."""
    half = max(points // 2, 2)
    early = np.geomspace(1, steps, half)
    late = np.linspace(1, steps, half)
    schedule = np.unique(np.concatenate([early, late, [1, steps]]).round().astype(np.int64))
    return schedule[(schedule >= 1) & (schedule <= steps)]


def run_kernel(
    *,
    problem: int,
    big: float,
    seed: int,
    steps: int,
    x1: float,
    flags: dict[str, Any],
    bounds: tuple[float, float],
    record: np.ndarray,
) -> KernelResult:
    """Run one optimizer (given by registry ``kernel_flags``) for one seed."""
    xs, regrets, final_x, final_regret = _run(
        problem,
        float(big),
        int(seed),
        int(steps),
        float(x1),
        VARIANTS.index(flags["variant"]),
        float(flags["lr"]),
        flags["lr_schedule"] == "inv_sqrt",
        float(flags["beta1"]),
        float(flags["beta2"]),
        BETA1_SCHEDULES.index(flags["beta1_schedule"]),
        float(flags["beta1_decay"]),
        bool(flags["bias_correction"]),
        float(flags["eps"]),
        float(bounds[0]),
        float(bounds[1]),
        np.ascontiguousarray(record, dtype=np.int64),
    )
    return KernelResult(record, xs, regrets, float(final_x), float(final_regret))
