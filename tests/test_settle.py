"""The settle rule (``synthetic.settle``, issue 21) on trajectories whose behaviour is
known by construction: nothing here runs an optimizer."""

from __future__ import annotations

import numpy as np
import pytest

from amsgrad_repro.synthetic.settle import (
    CONVERGED,
    FAILED,
    RULE,
    UNSETTLED,
    check_point,
    rounds,
    trajectory_state,
    with_check_points,
)

RADIUS = 0.1


def recorded(steps: int, period: int | None, law) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """x = law(t) at a schedule holding the rule's check point."""
    t = with_check_points(np.linspace(1, steps, 20).round(), [steps], [period or 1])
    return t, law(t.astype(float))


def test_check_point_is_half_way_at_the_same_phase():
    assert check_point(1000, None) == 500 and check_point(1001, None) == 501
    h = check_point(1_000_000, 101)
    assert (1_000_000 - h) % 101 == 0 and abs(h - 500_000) <= 101
    assert rounds(1000, 8000) == [1000, 2000, 4000, 8000]
    assert rounds(1000, 5000) == [1000, 2000, 4000, 5000]
    with pytest.raises(ValueError, match="below steps"):
        rounds(1000, 999)


def test_monotone_creep_towards_x_star_is_unsettled_until_it_stops():
    """x_t = −1 + 10/√t creeps towards −1: from T/2 to T it moves 10(√2 − 1)/√T, above the
    tolerance 0.01 until T > (10·0.414/0.01)² ≈ 1.7·10^5."""
    creep = lambda t: np.maximum(-1.0 + 10.0 / np.sqrt(t), -1.0)  # noqa: E731
    assert trajectory_state(*recorded(10_000, None, creep), RADIUS) == UNSETTLED
    assert trajectory_state(*recorded(1_000_000, None, creep), RADIUS) == CONVERGED
    # Held at −1 by the projection from some step on: settled and converged.
    clipped = lambda t: np.maximum(0.5 - t / 1000.0, -1.0)  # noqa: E731
    assert trajectory_state(*recorded(10_000, None, clipped), RADIUS) == CONVERGED
    # Held at +1: settled and failed (not unsettled, not converged).
    wrong = lambda t: np.minimum(t / 1000.0, 1.0)  # noqa: E731
    assert trajectory_state(*recorded(10_000, None, wrong), RADIUS) == FAILED


def test_a_periodic_steady_state_is_settled_at_like_phases():
    """x jumps between −1 and +1 within each 101-step period: compared at the same phase
    it has settled (T = 100 050 is at phase 60, where x = +1: failed); a check point of
    another period would compare different phases, and was never recorded."""
    period = 101
    jumping = lambda t: np.where(t % period < 50, -1.0, 1.0)  # noqa: E731
    t, x = recorded(100_050, period, jumping)
    assert trajectory_state(t, x, RADIUS, period=period) == FAILED
    with pytest.raises(ValueError, match="was not recorded"):
        trajectory_state(t, x, RADIUS, period=7)  # its check point was never recorded
    # A steady oscillation around x* within the radius, of small amplitude: converged.
    near = lambda t: -1.0 + 0.05 * (np.sin(2 * np.pi * t / period) + 1)  # noqa: E731
    assert trajectory_state(*recorded(100_000, period, near), RADIUS, period=period) == CONVERGED
    # The same oscillation drifting by 0.2 from T/2 to T: unsettled.
    drifting = lambda t: near(t) + 0.2 * t / 100_000  # noqa: E731
    state = trajectory_state(*recorded(100_000, period, drifting), RADIUS, period=period)
    assert state == UNSETTLED


def test_a_stalled_run_that_moves_again_is_unsettled():
    """Stalled at 0.3 up to t = 60 000, then falling: at T = 50 000 it reads as settled
    (and failed), at T = 100 000 as unsettled: the rule only speaks of what it saw."""
    stall = lambda t: np.where(t < 60_000, 0.3, 0.3 - (t - 60_000) / 50_000)  # noqa: E731
    assert trajectory_state(*recorded(50_000, None, stall), RADIUS) == FAILED
    assert trajectory_state(*recorded(100_000, None, stall), RADIUS) == UNSETTLED


def test_the_average_regret_must_settle_too():
    """x held at +1 but R_t/t still falling by more than the tolerance: unsettled."""
    t, x = recorded(10_000, None, lambda t: np.ones_like(t))
    regret = 0.2 + 100.0 / t  # 100/5000 − 100/10000 = 0.01 + ... > tolerance at T/2 vs T
    assert trajectory_state(t, x, RADIUS, regret=regret * 1.5) == UNSETTLED
    assert trajectory_state(t, x, RADIUS, regret=np.full(t.size, 0.2)) == FAILED
    assert RULE.x_tolerance < RADIUS / 4  # a settled cell cannot cross the radius later
