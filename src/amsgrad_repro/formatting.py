"""Numbers and counts in the words a reader sees (figure titles, verdict lines).

Two things printed text gets wrong otherwise: a count of one with a plural unit ("1
epochs"), and a number rounded so that it no longer says what it is: ``f"{-0.0:g}"`` is
"-0", and six significant digits can show a threshold equal to (or on the wrong side of)
the interval bound it is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

MIN_DIGITS = 6  # what ``:g`` prints; more only where these do not tell the values apart
MAX_DIGITS = 17  # enough to print any float64 exactly


def plural(count: int | float, unit: str) -> str:
    """``1 epoch``, ``2 epochs``, ``0 seeds``: the unit (its singular) in the count's
    number."""
    shown = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{shown} {unit}" if count == 1 else f"{shown} {unit}s"


def _compare(a: float, b: float) -> int:
    return (a > b) - (a < b)


def significant(value: float, near: Iterable[float] = ()) -> str:
    """``value`` with the fewest significant digits (at least :data:`MIN_DIGITS`) at which
    it keeps its sign and compares with each finite number of ``near`` (the interval it is
    judged against) as the exact values do, when those are rounded the same way; zero is
    "0", never "-0"."""
    if value == 0.0:
        return "0"
    if not math.isfinite(value):
        return f"{value:g}"
    others = [float(x) for x in near if math.isfinite(float(x))]
    for digits in range(MIN_DIGITS, MAX_DIGITS + 1):
        shown = float(f"{value:.{digits}g}")
        if all(_compare(shown, float(f"{x:.{digits}g}")) == _compare(value, x) for x in others):
            return f"{value:.{digits}g}"
    return repr(value)
