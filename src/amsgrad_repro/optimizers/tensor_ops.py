"""In-place tensor steps shared by the native updates.

A coefficient is a Python float, or (in a stacked job whose members differ in a tunable
hyper-parameter) a tensor with one value per member; :func:`per_param` shapes such a
tensor to broadcast against a stacked parameter ``[members, ...]``. The helpers take the
fast scalar overloads (``value=``) for floats, as ``torch/optim/adam.py`` does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from amsgrad_repro.optimizers.lazy_torch import torch

if TYPE_CHECKING:
    from torch import Tensor

Coefficient = Any  # float | Tensor
TensorState = dict[str, list["Tensor"]]  # state name -> one tensor per parameter


def is_number(value: Coefficient) -> bool:
    return isinstance(value, int | float)


def is_one(value: Coefficient) -> bool:
    return is_number(value) and value == 1.0


def per_param(value: Coefficient, param: Tensor) -> Coefficient:
    """A per-member coefficient viewed as ``[members, 1, ...]`` to broadcast over ``param``."""
    if is_number(value):
        return value
    return value.to(param.dtype).view(-1, *([1] * (param.dim() - 1)))


def zero_eps_floor(dtype: torch.dtype) -> float:
    """The ε = 0 rule's floor of a denominator in ``dtype``: √ of its smallest normal
    (:func:`amsgrad_repro.optimizers.scalar.guarded` says why)."""
    return math.sqrt(torch.finfo(dtype).tiny)


def guard_(denominator: Tensor, eps: float) -> Tensor:
    """``denominator`` + ε in place, or with ε = 0 floored at :func:`zero_eps_floor`:
    one elementwise pass either way, as :func:`scalar.guarded` computes it."""
    if eps > 0.0:
        return denominator.add_(eps)
    return denominator.clamp_min_(zero_eps_floor(denominator.dtype))


def foreach_guard_(denominators: list[Tensor], eps: float) -> None:
    """:func:`guard_` of a list, on the multi-tensor kernels."""
    if eps > 0.0:
        torch._foreach_add_(denominators, eps)
    else:
        torch._foreach_clamp_min_(denominators, zero_eps_floor(denominators[0].dtype))


def complement(value: Coefficient, param: Tensor) -> Coefficient:
    """1 − value shaped for ``param``, taken before a per-member value is cast to the
    parameter's dtype: in float32, 1 − β2 of a β2 = 0.999 already rounded is 1.3e-5 off in
    relative terms (float64 per-member values keep it exact, as a float step's is)."""
    return per_param(1.0 - value, param)


def ema_square_(average: Tensor, grad: Tensor, decay: Coefficient) -> None:
    """average ← decay·average + (1 − decay)·grad²; ``decay`` is a float or one value per
    member (not yet :func:`per_param`-shaped, see :func:`complement`)."""
    if is_number(decay):
        average.mul_(decay)
        average.addcmul_(grad, grad, value=1.0 - decay)
    else:
        average.mul_(per_param(decay, average))
        average.addcmul_(grad, grad * complement(decay, average))


def descend_(param: Tensor, numerator: Tensor, denominator: Tensor, step: Coefficient) -> None:
    """param ← param − step·numerator/denominator, one fused op for a float step."""
    if is_number(step):
        param.addcdiv_(numerator, denominator, value=-step)
    else:
        param.addcdiv_(numerator * step, denominator, value=-1.0)


def shrink_(params: list[Tensor], factor: Coefficient, foreach: bool) -> None:
    """x ← x·factor for every parameter: decoupled weight decay, factor 1 − α_t·λ (one
    number, or one value per stacked member)."""
    if foreach and is_number(factor):
        torch._foreach_mul_(params, factor)
        return
    for param in params:
        param.mul_(per_param(factor, param))


def uses_tensors(*values: Coefficient) -> bool:
    """Whether any coefficient holds per-member values (then the single-tensor path runs:
    the multi-tensor kernels take one scalar for a whole list)."""
    return not all(is_number(v) for v in values)


def corrected_sqrt(second: Tensor, v_scale: Coefficient, eps: float, param: Tensor) -> Tensor:
    """√second / √(1 − Πβ2) + ε (:func:`guard_`), a new tensor: the denominator of the
    Adam-like updates."""
    denom = second.sqrt()
    if not is_one(v_scale):
        denom.div_(per_param(v_scale, param))
    return guard_(denom, eps)


def foreach_corrected_sqrt(seconds: list[Tensor], v_scale: float, eps: float) -> list[Tensor]:
    """:func:`corrected_sqrt` of a list, on the multi-tensor kernels."""
    denoms = torch._foreach_sqrt(seconds)
    if not is_one(v_scale):
        torch._foreach_div_(denoms, v_scale)
    foreach_guard_(denoms, eps)
    return denoms


def moments_(
    m: Tensor, v: Tensor, grad: Tensor, beta1: Coefficient, beta2: Coefficient, param: Tensor
):
    """m ← β1·m + (1 − β1)·g and v ← β2·v + (1 − β2)·g², the constant-β moments."""
    m.lerp_(grad, complement(beta1, param))
    ema_square_(v, grad, beta2)


def foreach_moments_(
    ms: list[Tensor], vs: list[Tensor], grads: list[Tensor], beta1: float, beta2: float
) -> None:
    """:func:`moments_` on lists with the multi-tensor kernels."""
    torch._foreach_lerp_(ms, grads, 1.0 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)


def foreach_second_moment_(state: TensorState, use_max: bool) -> list[Tensor]:
    """v̂ of a list: AMSGrad's running max of v (``max_exp_avg_sq``, updated in place) when
    ``use_max``, else v (``exp_avg_sq``) itself."""
    if not use_max:
        return state["exp_avg_sq"]
    torch._foreach_maximum_(state["max_exp_avg_sq"], state["exp_avg_sq"])
    return state["max_exp_avg_sq"]
