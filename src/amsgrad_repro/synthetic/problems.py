"""The synthetic problems, each declared once: its gradient law and every fact about it.

All are linear losses f_t(x) = g_t·x on F = [−1, 1] (x* = −1 for every one), so a run is
its gradient sequence:

* ``online``:     g_t = 1010 if t mod 101 = 1 else −10 (a 101-step cycle sums to +10)
* ``stochastic``: g_t = 1010 with probability 0.01 else −10 (E[g] = 0.2)
* ``theorem1``:   g_t = C if t mod 3 = 1 else −1, C > 2 (Theorem 1; β1 = 0, β2 = 1/(1+C²))
* ``adopt``:      g_t = k² with probability 1/k else −k (ADOPT's problem; E[g] = 1, the
  noise grows with k)

A :class:`Problem` holds the name, the parameter the problem reads from its task or grid
and its exclusive minimum, whether it is deterministic, its period, the figure panels it
draws and its gradient law. Everything else derives from :data:`PROBLEMS`: the compiled
kernel's dispatch (``synthetic.kernel`` compiles each law), the generic tensor path (it
draws the kernel's gradients), the grids' checks (``synthetic.grid_spec``), the theory's
predictions (``analysis.grid_claims``), Figure 1's panels (``synthetic.figure``), and the
configuration schema's enumerations (``tests/test_problems.py`` holds them equal). Adding
a problem is adding one declaration here.

A gradient law is plain-float scalar code, g_t = law(t, parameter, start): only
arithmetic, comparisons and :func:`uniform`, which the kernel compiles. Random draws come
from a counter-based generator, u(seed, t) = SplitMix64(mix(seed) + t·γ): they depend only
on the seed and the step, never on x or on the order runs are computed in, so every
optimizer of a seed sees the same gradients (paired comparisons), the compiled kernel can
run seeds in parallel, and the generic tensor path can draw any block of steps. This module
imports no numba, so the Snakemake process validates configurations with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

RARE_GRADIENT = 1010.0
COMMON_GRADIENT = -10.0
ONLINE_PERIOD = 101
THEOREM1_PERIOD = 3
RARE_PROBABILITY = 0.01
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64's output function."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stream(seed: int) -> np.uint64:
    """The generator's starting point for a seed."""
    return mix64(np.uint64(seed) + GOLDEN)


def uniform(start: np.uint64, t: int) -> float:
    """u(seed, t) in [0, 1), 53 random bits; ``start`` is :func:`stream` of the seed."""
    z = mix64(start + np.uint64(t) * GOLDEN)
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# The generator's functions, compiled by the kernel for the laws to call.
GENERATOR = (mix64, stream, uniform)


def _online(t: int, big: float, start: np.uint64) -> float:
    return RARE_GRADIENT if t % ONLINE_PERIOD == 1 else COMMON_GRADIENT


def _stochastic(t: int, big: float, start: np.uint64) -> float:
    return RARE_GRADIENT if uniform(start, t) < RARE_PROBABILITY else COMMON_GRADIENT


def _theorem1(t: int, big: float, start: np.uint64) -> float:
    return big if t % THEOREM1_PERIOD == 1 else -1.0


def _adopt(t: int, big: float, start: np.uint64) -> float:
    return big * big if uniform(start, t) * big < 1.0 else -big


GradientLaw = Callable[[int, float, np.uint64], float]


@dataclass(frozen=True)
class Problem:
    """One synthetic problem. ``parameter`` is the key (``C``, ``k``) whose value the law
    receives as ``big`` (None: the law reads none, and receives 0), above ``minimum``
    (exclusive: there x* = −1; Theorem 1 needs C > 2, where a 3-step cycle sums to
    C − 2 > 0; ADOPT's k > 1). A ``deterministic`` problem gives every seed the same run
    (a grid runs its first seed only); a periodic one's ``period`` is what the steady-state
    prediction sums over. ``title`` and ``panels`` (the metrics it draws) make its Figure 1
    panels."""

    name: str
    law: GradientLaw
    title: str
    parameter: str | None = None
    minimum: float | None = None
    parameter_doc: str = ""
    deterministic: bool = False
    period: int | None = None
    panels: tuple[str, ...] = ("x",)


PROBLEMS: dict[str, Problem] = {
    problem.name: problem
    for problem in (
        Problem(
            "online",
            _online,
            "Online",
            deterministic=True,
            period=ONLINE_PERIOD,
            panels=("avg_regret", "x"),
        ),
        Problem("stochastic", _stochastic, "Stochastic"),
        Problem(
            "theorem1",
            _theorem1,
            "Theorem 1 problem",
            parameter="C",
            minimum=2.0,
            parameter_doc="Theorem 1's large gradient (C > 2)",
            deterministic=True,
            period=THEOREM1_PERIOD,
        ),
        Problem(
            "adopt",
            _adopt,
            "ADOPT's problem",
            parameter="k",
            minimum=1.0,
            parameter_doc="ADOPT's problem, g = k^2 with probability 1/k else -k",
        ),
    )
}
# What every synthetic run records per step (metrics.csv) and a grid per cell: the
# iterate and the average regret R_t/t (synthetic.runner, synthetic.grids).
SYNTHETIC_METRICS: tuple[str, ...] = ("x", "avg_regret")
# On a periodic problem, also the range of each over the period ending at a recorded step
# (metrics.csv columns; the curves are drawn at one phase, synthetic.runner.record_plan).
PERIOD_RANGE: dict[str, tuple[str, str]] = {
    m: (f"{m}_period_min", f"{m}_period_max") for m in SYNTHETIC_METRICS
}
# Derived views, for the modules that ask one question of every problem.
PARAMETER: dict[str, str | None] = {name: p.parameter for name, p in PROBLEMS.items()}
PARAMETER_MINIMUM: dict[str, float] = {
    p.parameter: p.minimum
    for p in PROBLEMS.values()
    if p.parameter is not None and p.minimum is not None
}
DETERMINISTIC: frozenset[str] = frozenset(n for n, p in PROBLEMS.items() if p.deterministic)
LAWS: tuple[GradientLaw, ...] = tuple(p.law for p in PROBLEMS.values())


def problem_id(name: str) -> int:
    """The problem's index in :data:`PROBLEMS`, which is how the kernel dispatches."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown synthetic problem {name!r} (known: {', '.join(PROBLEMS)})")
    return list(PROBLEMS).index(name)


def problem_parameter(task: Mapping) -> float:
    """The task's value of its problem's parameter (C or k), 0 for the paper's problems."""
    key = PARAMETER[task["problem"]]
    return float(task[key]) if key else 0.0
