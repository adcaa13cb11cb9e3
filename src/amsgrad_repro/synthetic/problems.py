"""Gradient laws of the synthetic problems, as data plus compiled code.

All are linear losses f_t(x) = g_t·x on F = [−1, 1] (x* = −1 for every one), so a run is
its gradient sequence:

* ``online``:     g_t = 1010 if t mod 101 = 1 else −10 (a 101-step cycle sums to +10)
* ``stochastic``: g_t = 1010 with probability 0.01 else −10 (E[g] = 0.2)
* ``theorem1``:   g_t = C if t mod 3 = 1 else −1, C > 2 (Theorem 1; β1 = 0, β2 = 1/(1+C²))
* ``adopt``:      g_t = k² with probability 1/k else −k (ADOPT's problem; E[g] = 1, the
  noise grows with k)

Random draws come from a counter-based generator, u(seed, t) = SplitMix64(mix(seed) + t·γ):
they depend only on the seed and the step, never on x or on the order runs are computed
in, so every optimizer of a seed sees the same gradients (paired comparisons), the compiled
kernel can run seeds in parallel, and the generic tensor path can draw any block of steps.
"""

from __future__ import annotations

import numba
import numpy as np

from amsgrad_repro import numba_cache

numba_cache.configure()

PROBLEMS: tuple[str, ...] = ("online", "stochastic", "theorem1", "adopt")
ONLINE, STOCHASTIC, THEOREM1, ADOPT = (PROBLEMS.index(n) for n in PROBLEMS)
# The problem parameter each problem reads from its task ("big" in the kernel).
PARAMETER: dict[str, str | None] = {
    "online": None,
    "stochastic": None,
    "theorem1": "C",
    "adopt": "k",
}
# Each parameter's exclusive lower bound: above it x* = −1 (Theorem 1 needs C > 2, where a
# 3-step cycle sums to C − 2 > 0; ADOPT's k > 1). The task schema says the same for tasks;
# grids compute their values from ranges, so ``synthetic.grid_spec`` checks them here.
PARAMETER_MINIMUM: dict[str, float] = {"C": 2.0, "k": 1.0}
# Problems whose gradients do not depend on the seed (every seed gives the same run).
DETERMINISTIC: frozenset[str] = frozenset({"online", "theorem1"})
RARE_GRADIENT = 1010.0
COMMON_GRADIENT = -10.0
ONLINE_PERIOD = 101
RARE_PROBABILITY = 0.01
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, inline="always")
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64's output function."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def stream(seed: int) -> np.uint64:
    """The generator's starting point for a seed."""
    return mix64(np.uint64(seed) + GOLDEN)


@numba.njit(cache=True, inline="always")
def uniform(start: np.uint64, t: int) -> float:
    """u(seed, t) in [0, 1), 53 random bits."""
    z = mix64(start + np.uint64(t) * GOLDEN)
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, inline="always")
def gradient(problem: int, t: int, big: float, start: np.uint64) -> float:
    """g_t for step t ≥ 1; ``big`` is C (theorem1) or k (adopt); ``start`` is
    :func:`stream` of the run's seed."""
    if problem == ONLINE:
        return RARE_GRADIENT if t % ONLINE_PERIOD == 1 else COMMON_GRADIENT
    if problem == STOCHASTIC:
        return RARE_GRADIENT if uniform(start, t) < RARE_PROBABILITY else COMMON_GRADIENT
    if problem == THEOREM1:
        return big if t % 3 == 1 else -1.0
    return big * big if uniform(start, t) * big < 1.0 else -big


@numba.njit(cache=True)
def gradient_block(problem: int, big: float, seed: int, first: int, count: int) -> np.ndarray:
    """g_first … g_{first+count−1}, drawn exactly as the kernel draws them."""
    start = stream(seed)
    out = np.empty(count)
    for i in range(count):
        out[i] = gradient(problem, first + i, big, start)
    return out


def gradient_sequence(problem: int, big: float, seed: int, steps: int) -> np.ndarray:
    """g_1 … g_T."""
    return gradient_block(problem, float(big), int(seed), 1, int(steps))


def problem_id(name: str) -> int:
    try:
        return PROBLEMS.index(name)
    except ValueError:
        raise ValueError(
            f"unknown synthetic problem {name!r} (known: {', '.join(PROBLEMS)})"
        ) from None


def problem_parameter(task: dict) -> float:
    """The task's value of its problem's parameter (C or k), 0 for the paper's problems."""
    key = PARAMETER[task["problem"]]
    return float(task[key]) if key else 0.0


def optimal_value(cumulative_gradient: float, bounds: tuple[float, float]) -> float:
    """min over x in the box of G·x, the comparator's loss in the regret."""
    low, high = bounds
    return cumulative_gradient * (low if cumulative_gradient > 0 else high)
