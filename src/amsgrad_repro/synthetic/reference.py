"""The plain ``torch.optim`` loop on a synthetic problem: one Python step per t.

This is what the compiled kernel must agree with (tests) and what it is timed against
(``benchmarks/synthetic.py``). It accepts any optimizer in the registry, so it also serves
optimizers the kernel does not model (SGD, Adagrad, RMSprop).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amsgrad_repro.synthetic.kernel import KernelResult
from amsgrad_repro.synthetic.problems import gradient_sequence


def run_reference(
    *,
    optimizer: str,
    hparams: dict[str, Any],
    problem: int,
    big: float,
    seed: int,
    steps: int,
    x1: float,
    bounds: tuple[float, float],
    record: np.ndarray,
) -> KernelResult:
    import torch

    from amsgrad_repro.registry import build_optimizer

    grads = torch.from_numpy(gradient_sequence(problem, big, seed, steps))
    x = torch.tensor([x1], dtype=torch.float64, requires_grad=True)
    opt, scheduler = build_optimizer(optimizer, [x], hparams)
    recorded = set(record.tolist())
    xs, regrets = [], []
    loss_sum = 0.0
    grad_sum = 0.0
    low, high = bounds
    for t in range(1, steps + 1):
        g = grads[t - 1]
        loss_sum += float(g) * float(x.detach())
        grad_sum += float(g)
        x.grad = g.reshape(1).clone()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        with torch.no_grad():
            x.clamp_(low, high)
        if t in recorded:
            best = grad_sum * (low if grad_sum > 0 else high)
            xs.append(float(x.detach()))
            regrets.append((loss_sum - best) / t)
    best = grad_sum * (low if grad_sum > 0 else high)
    return KernelResult(
        np.asarray(sorted(recorded)),
        np.asarray(xs),
        np.asarray(regrets),
        float(x.detach()),
        (loss_sum - best) / steps,
    )
