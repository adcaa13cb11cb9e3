"""Gradient-norm clipping, a task setting (``grad_clip_norm: c``, default none).

Before every update the gradient of all the model's parameters together is scaled by
min(1, c/(‖g‖₂ + 1e-6)), exactly as ``torch.nn.utils.clip_grad_norm_`` does (the 1e-6 is
PyTorch's). In a stacked job (``train.stacked``) each member is its own model, so each
member's gradient is clipped by its own norm: the norm over every parameter's slice of
that member, never over the stack, so that a member trains as it would alone (tested).
Neither path reads anything back to the host: the factor stays a tensor on the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

# PyTorch's guard against a zero norm in clip_grad_norm_ (torch/nn/utils/clip_grad.py).
NORM_EPS = 1e-6
SETTING = "grad_clip_norm"


def clip_norm(settings: Mapping[str, Any]) -> float | None:
    """The task's clipping norm c, or None (no clipping); anything but a positive finite
    number (or null) is refused naming the key."""
    value = settings.get(SETTING)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{SETTING}: expected a positive number or null, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{SETTING}: must be a finite number > 0 (or null for none), got {value!r}"
        )
    return float(value)


def clip_grads_(params: Iterable[torch.Tensor], max_norm: float) -> None:
    """One model's gradients clipped to ``max_norm`` (PyTorch's own function)."""
    torch.nn.utils.clip_grad_norm_(list(params), max_norm)


def clip_member_grads_(params: Iterable[torch.Tensor], max_norm: float) -> None:
    """Stacked parameters ``[members, ...]``: each member's gradients clipped to
    ``max_norm`` by that member's own norm, with clip_grad_norm_'s formula."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    squares = sum(g.flatten(1).pow(2).sum(1, dtype=torch.float64) for g in grads)
    factor = (max_norm / (squares.sqrt() + NORM_EPS)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(factor.to(grad.dtype).view(-1, *([1] * (grad.dim() - 1))))


def clipper(
    settings: Mapping[str, Any], params: list[torch.Tensor], *, stacked: bool
) -> Callable[[], None] | None:
    """What the training loop calls between backward and step, or None (no clipping)."""
    max_norm = clip_norm(settings)
    if max_norm is None:
        return None
    clip = clip_member_grads_ if stacked else clip_grads_
    return lambda: clip(params, max_norm)
