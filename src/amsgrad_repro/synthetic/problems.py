"""Gradient sequences of the synthetic problems, compiled with numba.

* online:     g_t = 1010 if t mod 101 = 1 else −10 (a 101-step cycle sums to +10, x* = −1)
* stochastic: g_t = 1010 with probability 0.01 else −10 (E[g] = 0.2 > 0, x* = −1)
* theorem1:   g_t = C if t mod 3 = 1 else −1, C > 2 (Theorem 1; β1 = 0, β2 = 1/(1+C²))

The stochastic draw depends only on the seed and t, never on x, so every optimizer run with
the same seed sees exactly the same gradients (paired comparisons).
"""

from __future__ import annotations

import numba
import numpy as np

PROBLEMS: dict[str, int] = {"online": 0, "stochastic": 1, "theorem1": 2}
RARE_GRADIENT = 1010.0
COMMON_GRADIENT = -10.0
ONLINE_PERIOD = 101
RARE_PROBABILITY = 0.01


@numba.njit(cache=True, inline="always")
def gradient(problem: int, t: int, big: float) -> float:
    """g_t for step t ≥ 1. The stochastic problem draws from numba's global RNG, which the
    caller seeds once per run."""
    if problem == 0:
        return RARE_GRADIENT if t % ONLINE_PERIOD == 1 else COMMON_GRADIENT
    if problem == 1:
        return RARE_GRADIENT if np.random.random() < RARE_PROBABILITY else COMMON_GRADIENT
    return big if t % 3 == 1 else -1.0


@numba.njit(cache=True)
def gradient_sequence(problem: int, big: float, seed: int, steps: int) -> np.ndarray:
    """g_1..g_T as an array, drawn exactly as the kernel draws them."""
    np.random.seed(seed)
    out = np.empty(steps)
    for i in range(steps):
        out[i] = gradient(problem, i + 1, big)
    return out


def problem_id(name: str) -> int:
    try:
        return PROBLEMS[name]
    except KeyError:
        raise ValueError(
            f"unknown synthetic problem {name!r} (known: {sorted(PROBLEMS)})"
        ) from None


def optimal_value(cumulative_gradient: float, bounds: tuple[float, float]) -> float:
    """min over x in the box of G·x, the comparator's loss in the regret."""
    low, high = bounds
    return cumulative_gradient * (low if cumulative_gradient > 0 else high)
