"""The one settle rule of the 1-D problems: converged, failed or still moving.

A run's final x says where it *is* at its last step, not where it goes: a run creeping
towards x* with a 1/√t step, or drifting towards +1, is at neither end when its step budget
runs out. So every synthetic result (a grid's cell, Figure 1's run) is judged by
:data:`RULE`:

* it has **settled** at step T when its iterate moved by at most ``x_tolerance`` between
  the check point H ≈ T/2 and T, and, where the problem draws R_t/t (the online problem),
  the average regret moved by at most ``regret_tolerance`` too;
* a periodic problem is compared at like phases: H = T − P·⌊T/(2P)⌋ (P its period), so
  x_H and x_T are the same point of the period and a steady oscillation does not read as
  movement (nor a movement hide inside one);
* a settled run within ``success_radius`` of x* = −1 is **converged**, a settled run
  elsewhere (or one that left the finite numbers) **failed**, anything else **unsettled**.

Why these numbers: a run that still approaches a limit like a + b/√t moves by a factor
1/√2 less in each doubling of T, so after moving at most 0.01 from T/2 to T it has at most
0.01·(1/√2)/(1 − 1/√2) ≈ 0.024 left to move, a quarter of the grids' success radius (0.1):
a settled cell cannot cross the radius later. A run that drifts (x moves by −α_t·D per
period, α_t ∝ 1/√t) moves by ∝ √T per doubling, more and more, so it never reads as
settled until it is held at an end of F = [−1, 1]. R_t/t lies on the scale of a per-step
loss of the online problem (|g| = 10, so a failed run's R_t/t ≈ 0.2): 0.01 is 5% of it.

Free of numba and pandas: the figures, the claims and the grid runner all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amsgrad_repro.run_states import CONVERGED, FAILED, STATES, UNSETTLED

X_STAR = -1.0
__all__ = ["CONVERGED", "FAILED", "STATES", "UNSETTLED"]  # re-exported
# "Reaches x*" for a synthetic task that declares no ``success_radius`` (the grids declare
# theirs; 0.1 is what config.yaml gives every grid).
DEFAULT_SUCCESS_RADIUS = 0.1


@dataclass(frozen=True)
class SettleRule:
    """The settle rule (module docstring): tolerances on the move from H ≈ T/2 to T."""

    x_tolerance: float = 0.01
    regret_tolerance: float = 0.01

    def describe(self) -> str:
        return (
            f"settled: x (and R_t/t on the online problem) moved by at most "
            f"{self.x_tolerance:g} (R_t/t: {self.regret_tolerance:g}) from t = T/2 to T, "
            "at like phases on a periodic problem"
        )


RULE = SettleRule()


def check_point(steps: int, period: int | None) -> int:
    """H, the step compared with T = ``steps``: T − P·⌊T/(2P)⌋ (P = 1: ⌈T/2⌉), the point
    of the same phase as T nearest below T/2 … above it by less than one period."""
    p = int(period or 1)
    return int(steps) - p * (int(steps) // (2 * p))


def settled(
    x_half: np.ndarray,
    x_end: np.ndarray,
    regret_half: np.ndarray | None = None,
    regret_end: np.ndarray | None = None,
    rule: SettleRule = RULE,
) -> np.ndarray:
    """Per run: whether it moved within the rule's tolerances from H to T (NaN: no)."""
    with np.errstate(invalid="ignore"):
        still = np.abs(np.asarray(x_end, float) - np.asarray(x_half, float)) <= rule.x_tolerance
        if regret_half is not None and regret_end is not None:
            moved = np.abs(np.asarray(regret_end, float) - np.asarray(regret_half, float))
            still &= moved <= rule.regret_tolerance
    return still


def states(
    settled_runs: np.ndarray, x_end: np.ndarray, radius: float, finite: np.ndarray | None = None
) -> np.ndarray:
    """Per run: converged, failed or unsettled (a run that left the finite numbers has
    failed, whatever it moved)."""
    x_end = np.asarray(x_end, float)
    finite = np.isfinite(x_end) if finite is None else np.asarray(finite, bool)
    with np.errstate(invalid="ignore"):
        near = np.abs(x_end - X_STAR) < radius
    out = np.where(near, CONVERGED, FAILED).astype(object)
    out[~np.asarray(settled_runs, bool) & finite] = UNSETTLED
    out[~finite] = FAILED
    return out


def trajectory_state(
    steps: np.ndarray,
    x: np.ndarray,
    radius: float,
    period: int | None = None,
    regret: np.ndarray | None = None,
    rule: SettleRule = RULE,
) -> str:
    """One recorded run's state: x (and R_t/t) at its last recorded step T against its
    check point H (which must have been recorded: a ValueError says otherwise)."""
    steps = np.asarray(steps)
    end = int(steps[-1])
    half = check_point(end, period)
    where = np.flatnonzero(steps == half)
    if where.size == 0:
        raise ValueError(f"the check point t = {half} of T = {end} was not recorded")
    i = int(where[0])
    r_half = None if regret is None else np.asarray(regret)[i : i + 1]
    r_end = None if regret is None else np.asarray(regret)[-1:]
    still = settled(np.asarray(x)[i : i + 1], np.asarray(x)[-1:], r_half, r_end, rule)
    return str(states(still, np.asarray(x)[-1:], radius)[0])


def with_check_points(schedule: np.ndarray, ends: list[int], periods: list[int | None]):
    """``schedule`` with every end T in ``ends`` and its check point for every period."""
    extra = [t for t in ends for t in (t, *(check_point(t, p) for p in periods))]
    return np.unique(np.concatenate([np.asarray(schedule, np.int64), np.array(extra, np.int64)]))


def rounds(steps: int, max_steps: int) -> list[int]:
    """The ends of the continuation rounds: steps, 2·steps, 4·steps … capped at max_steps
    (the last round ends at max_steps exactly)."""
    if max_steps < steps:
        raise ValueError(f"max_steps ({max_steps}) is below steps ({steps})")
    ends = [int(steps)]
    while ends[-1] < max_steps:
        ends.append(min(2 * ends[-1], int(max_steps)))
    return ends
