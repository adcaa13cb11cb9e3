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
# The smallest normal float64; with :func:`guarded`, the zero-denominator rule's floor.
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
def guarded(root: float, eps: float, tiny: float) -> float:
    """A denominator √v + ε; with ε = 0 (the paper's Adam and AMSGrad), √v floored at
    √tiny, the square root of the precision's smallest normal (1.1e-19 in float32,
    1.5e-154 in float64), so that 0/0 is a zero step, never NaN.

    Why √tiny and not tiny: v is a sum of squares, so a v below tiny is either subnormal or,
    once it underflows (g² < 1e-45 in float32, or any subnormal under flush-to-zero,
    ``train/device.py``), exactly 0 while m = (1 − β1)·g is still a normal number. With a
    floor of tiny that coordinate steps by m/1.2e-38, about 10^17 α (seen: logistic
    regression diverging at step 400 under flush-to-zero); with √tiny it steps by at most
    about α·|m|/√tiny. Every √v ≥ √tiny, i.e. every v that the precision holds as a normal
    number, is unchanged."""
    if eps > 0.0:
        return root + eps
    return max(root, sqrt(tiny))


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
