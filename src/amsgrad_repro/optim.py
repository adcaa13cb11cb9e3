"""Adam, AMSGrad and AdamNC exactly as Reddi, Kale & Kumar (ICLR 2018) define them.

One update rule, :func:`paper_adam_update`, serves all three algorithms and every task; the
options are flags, as in ``torch/optim/adam.py``. The paper form has no bias correction and
no epsilon; both can be switched on, which is how the PyTorch form of AMSGrad is expressed:

* paper AMSGrad:   x ← Π(x − α_t · m_t / √v̂_t),  v̂_t = max(v̂_{t−1}, v_t)
* PyTorch AMSGrad: x ← x − α/(1−β1^t) · m_t / (√v̂_t / √(1−β2^t) + ε)
  (``torch.optim.Adam(amsgrad=True)``: max of the *raw* EMA, divided by the *current*
  bias correction, ε = 1e-8; pytorch issue #142323). ``bias_correction=True, eps=1e-8``
  reproduces it.

Where the denominator is zero (ε = 0 and a coordinate whose gradients were all zero) the
step is defined as zero instead of 0/0 = NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch.optim import Optimizer

from amsgrad_repro.schedules import (
    BETA1_SCHEDULES,
    LR_SCHEDULES,
    VARIANTS,
    Beta1Schedule,
    LrSchedule,
    StepCoefficients,
    Variant,
    coefficients,
)


def paper_adam_update(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    exp_avgs: Sequence[torch.Tensor],
    exp_avg_sqs: Sequence[torch.Tensor],
    max_exp_avg_sqs: Sequence[torch.Tensor],
    coeffs: StepCoefficients,
    *,
    amsgrad: bool,
    eps: float,
    bounds: tuple[float, float] | None,
) -> None:
    """One in-place step of Adam/AMSGrad/AdamNC on a list of tensors."""
    for i, param in enumerate(params):
        grad, m, v = grads[i], exp_avgs[i], exp_avg_sqs[i]
        m.mul_(coeffs.beta1).add_(grad, alpha=1.0 - coeffs.beta1)
        v.mul_(coeffs.beta2).addcmul_(grad, grad, value=1.0 - coeffs.beta2)
        second = v
        if amsgrad:
            torch.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            second = max_exp_avg_sqs[i]
        denom = (second / coeffs.v_correction).sqrt_().add_(eps)
        direction = torch.where(denom > 0, m / (coeffs.m_correction * denom), 0.0)
        param.sub_(coeffs.alpha * direction)
        if bounds is not None:
            param.clamp_(bounds[0], bounds[1])


class PaperAdam(Optimizer):
    """The paper's Adam family as a ``torch.optim.Optimizer``.

    Args:
        lr: α.
        betas: (β1, β2); AdamNC ignores β2 (it uses 1 − 1/t).
        variant: ``adam``, ``amsgrad`` or ``adamnc``.
        lr_schedule: ``constant`` (α) or ``inv_sqrt`` (α/√t).
        beta1_schedule: ``constant``, ``exp_decay`` (β1·λ^(t−1)) or ``inv_t`` (β1/t).
        beta1_decay: λ for ``exp_decay``.
        bias_correction: divide m and v by 1 − Πβ (off in the paper).
        eps: added to √v (0 in the paper; a zero denominator gives a zero step).
        bounds: (low, high) box to project onto after each step (the synthetic problems'
            F = [−1, 1]); for a box the paper's weighted projection is plain clipping.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        *,
        variant: Variant = "adam",
        lr_schedule: LrSchedule = "constant",
        beta1_schedule: Beta1Schedule = "constant",
        beta1_decay: float = 1.0,
        bias_correction: bool = False,
        eps: float = 0.0,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        if beta1_schedule not in BETA1_SCHEDULES:
            raise ValueError(
                f"beta1_schedule must be one of {BETA1_SCHEDULES}, got {beta1_schedule!r}"
            )
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        if bounds is not None:
            bounds = (float(bounds[0]), float(bounds[1]))
            if bounds[0] > bounds[1]:
                raise ValueError(f"bounds must be (low, high) with low <= high, got {bounds}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            variant=variant,
            lr_schedule=lr_schedule,
            beta1_schedule=beta1_schedule,
            beta1_decay=beta1_decay,
            bias_correction=bias_correction,
            eps=eps,
            bounds=bounds,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict) -> None:
        params, grads, exp_avgs, exp_avg_sqs, max_sqs = [], [], [], [], []
        amsgrad = group["variant"] == "amsgrad"
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError("PaperAdam does not support sparse gradients")
            state = self.state[param]
            if not state:
                state["step"] = 0
                state["beta1_product"] = 1.0
                state["beta2_product"] = 1.0
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                if amsgrad:
                    state["max_exp_avg_sq"] = torch.zeros_like(
                        param, memory_format=torch.preserve_format
                    )
            params.append(param)
            grads.append(param.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            if amsgrad:
                max_sqs.append(state["max_exp_avg_sq"])
        if not params:
            return
        # All parameters of a group advance together, so one step counter serves them all.
        state = self.state[params[0]]
        t = state["step"] + 1
        beta1, beta2 = group["betas"]
        coeffs = coefficients(
            t,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            variant=group["variant"],
            lr_schedule=group["lr_schedule"],
            beta1_schedule=group["beta1_schedule"],
            beta1_decay=group["beta1_decay"],
            bias_correction=group["bias_correction"],
            beta1_product=state["beta1_product"],
            beta2_product=state["beta2_product"],
        )
        paper_adam_update(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            max_sqs,
            coeffs,
            amsgrad=amsgrad,
            eps=group["eps"],
            bounds=group["bounds"],
        )
        for param in params:
            param_state = self.state[param]
            param_state["step"] = t
            param_state["beta1_product"] = coeffs.beta1_product
            param_state["beta2_product"] = coeffs.beta2_product


class Adam(PaperAdam):
    """Algorithm 1 of the paper (no bias correction, no ε)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.99), **options) -> None:
        super().__init__(params, lr, betas, variant="adam", **options)


class AMSGrad(PaperAdam):
    """Algorithm 2 of the paper: Adam with v̂_t = max(v̂_{t−1}, v_t)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.99), **options) -> None:
        super().__init__(params, lr, betas, variant="amsgrad", **options)


class AdamNC(PaperAdam):
    """Section 4's AdamNC: β2t = 1 − 1/t, so v_t is the mean of all squared gradients."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.99), **options) -> None:
        super().__init__(params, lr, betas, variant="adamnc", **options)
