"""Plain-float code shared by the tensor updates and the compiled 1-D kernel.

A function marked :func:`scalar_code` uses only arithmetic, comparisons, :func:`sqrt` and
attribute reads of its packed hyper-parameters (``optimizers.hparams.pack``), so the same
body runs

* in Python, once per step of a tensor optimizer, on floats (or, for coefficients, on
  tensors holding one value per member of a stacked job), and
* compiled by numba inside the synthetic kernel, where :mod:`amsgrad_repro.synthetic.kernel`
  registers every marked function with ``numba.extending.register_jitable``.

Scalar steps of the 1-D problems (``scalar_step``) carry their state in a tuple of
:data:`STATE_SLOTS` floats, so that every optimizer family has the same state type and one
compiled kernel can dispatch between them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

SCALAR_CODE: list[Callable[..., Any]] = []
STATE_SLOTS = 8
# The zero-denominator rule (ε = 0): a denominator is computed with ε = the smallest normal
# float instead. Every nonzero denominator (√v ≥ 1e-162 in float64, 4e-23 in float32) is
# unchanged by it in that precision, and 0/0 becomes 0/tiny = 0, a zero step, without a
# comparison on every element.
TINY64 = sys.float_info.min


def scalar_code(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``function`` as shared scalar code (see the module docstring)."""
    SCALAR_CODE.append(function)
    return function


def sqrt(x: Any) -> Any:
    """√x of a float or of a tensor of per-member values; the compiled kernel substitutes
    ``math.sqrt`` (``x ** 0.5`` would compile to a slower ``pow``)."""
    return x**0.5


@scalar_code
def denominator_floor(eps: float, tiny: float) -> float:
    """ε under the zero-denominator rule, for a precision whose smallest normal is ``tiny``."""
    return eps if eps > tiny else tiny


@scalar_code
def decayed(product: Any, beta: Any) -> Any:
    """product·β for the running products Πβ of bias corrections, flushed to 0 once below
    the smallest normal float. Unflushed, Πβ would stop at the smallest subnormal (0.9 ×
    5e-324 rounds back to 5e-324) and every later step would run on subnormal arithmetic,
    which is 20–30 times slower; 1 − Πβ is exactly 1 either way. Written without a branch
    so that per-member tensors take the same path."""
    product = product * beta
    return product * (product >= TINY64)


@scalar_code
def zero_state() -> tuple[float, float, float, float, float, float, float, float]:
    return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
