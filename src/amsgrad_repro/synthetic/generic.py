"""The generic path: any optimizer (a ``torch.optim`` class, a plug-in) on a 1-D problem.

Every seed is one coordinate of a single float64 tensor when the optimizer is elementwise
(one ``step()`` serves all seeds; seeds cannot interact), else one parameter per seed in
the same optimizer. Gradients come in blocks from ``kernel.gradient_block``, exactly the
draws the compiled kernel makes; the iterates of a block are kept so that the loss
Σ g_t·x_t, the regret and the recorded x are computed block-wise, not per step in Python.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amsgrad_repro.optimizers.schedules import lr_factor
from amsgrad_repro.optimizers.spec import OptimizerSpec
from amsgrad_repro.synthetic.kernel import BatchResult, gradient_block

BLOCK = 65_536


def run_generic(
    spec: OptimizerSpec,
    settings: Any,
    *,
    problem: int,
    big: float,
    seeds: list[int],
    steps: int,
    x1: float,
    bounds: tuple[float, float],
    record: np.ndarray,
) -> BatchResult:
    """Run ``spec`` for every seed at once; same outputs as ``kernel.run_batch``."""
    import torch

    # here, not at the top: it loads torch
    from amsgrad_repro.optimizers.torch_optimizer import build

    n = len(seeds)
    low, high = bounds
    if spec.elementwise:
        params = [torch.full((n,), float(x1), dtype=torch.float64, requires_grad=True)]
    else:
        params = [
            torch.full((1,), float(x1), dtype=torch.float64, requires_grad=True) for _ in seeds
        ]
    grads = [torch.zeros_like(p) for p in params]
    optimizer, _ = build(spec, params, settings, scheduler=False)
    # α_t is set on the param groups directly: a LambdaLR costs more than some updates.
    schedule = None if settings.lr_schedule == "constant" else settings
    position = {int(t): i for i, t in enumerate(record)}
    xs = np.empty((n, record.size))
    regrets = np.empty((n, record.size))
    loss_sum = np.zeros(n)
    grad_sum = np.zeros(n)
    x_now = np.full(n, float(x1))
    for first in range(1, steps + 1, BLOCK):
        count = min(BLOCK, steps + 1 - first)
        block = np.stack(
            [gradient_block(problem, float(big), int(seed), first, count) for seed in seeds], axis=1
        )
        after = _steps(
            optimizer, schedule, first, params, grads, torch.from_numpy(block), low, high
        )
        before = np.concatenate([x_now[None, :], after[:-1]])
        losses = np.cumsum(block * before, axis=0) + loss_sum
        sums = np.cumsum(block, axis=0) + grad_sum
        for t in range(first, first + count):
            if t in position:
                i, j = t - first, position[t]
                xs[:, j] = after[i]
                regrets[:, j] = (losses[i] - _best(sums[i], low, high)) / t
        loss_sum, grad_sum, x_now = losses[-1], sums[-1], after[-1]
    final_regret = (loss_sum - _best(grad_sum, low, high)) / steps
    return BatchResult(record, xs, regrets, x_now.copy(), final_regret)


def _steps(optimizer, schedule, first: int, params, grads, block, low: float, high: float):
    """One optimizer step per row of ``block`` (steps × seeds), the first being step
    ``first``; returns the iterates after each step as an array."""
    import torch

    after = torch.empty_like(block)
    rows = block.unbind(0)
    single = len(params) == 1
    with torch.no_grad():
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        for i, row in enumerate(rows):
            if schedule is not None:
                lr = schedule.lr * lr_factor(schedule, first + i)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            if single:
                grads[0].copy_(row)
            else:
                for k, grad in enumerate(grads):
                    grad.copy_(row[k : k + 1])
            optimizer.step()
            if single:
                params[0].clamp_(low, high)
                after[i].copy_(params[0])
            else:
                for k, param in enumerate(params):
                    param.clamp_(low, high)
                    after[i, k] = param[0]
    return after.numpy()


def _best(grad_sum: np.ndarray, low: float, high: float) -> np.ndarray:
    """min over x in the box of G·x, per seed."""
    return np.where(grad_sum > 0.0, grad_sum * low, grad_sum * high)
