"""A native family as a ``torch.optim.Optimizer``, and :func:`build` for any spec.

:class:`DeclaredOptimizer` keeps the per-parameter state a family names, computes the
step's scalars once per step with the family's shared ``coefficients``, and hands lists of
tensors to the family's functional update, on the multi-tensor path by default on CUDA
(as ``torch.optim`` does) and on the single-tensor path on CPU. Its hyper-parameters are
the resolved settings object; in a stacked job, tunable ones may be tensors with one value
per member (``members``), which the update broadcasts over each stacked parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim import Optimizer

from amsgrad_repro.optimizers import BUILTINS, hparams
from amsgrad_repro.optimizers.schedules import check_horizon, lr_factor, step_size
from amsgrad_repro.optimizers.spec import NativeFamily, OptimizerSpec, TorchClass
from amsgrad_repro.optimizers.tensor_ops import shrink_


class DeclaredOptimizer(Optimizer):
    """The optimizer of a :class:`NativeFamily` with resolved ``settings``."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        family: NativeFamily,
        settings: Any,
        *,
        foreach: bool | None = None,
        members: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.family = family
        self.settings = settings
        self.hp = hparams.pack(settings, **dict(members or {}))
        super().__init__(params, {"foreach": foreach})
        # A group may set its own weight_decay (e.g. 0 for a transformer's biases, norms
        # and embeddings, train.kinds.lm): its step reads settings with that value.
        self.group_hp = [self._group_hp(group, settings, members) for group in self.param_groups]

    def _group_hp(self, group: dict, settings: Any, members: Mapping | None) -> Any:
        if "weight_decay" not in group:
            return self.hp
        if not hasattr(settings, "weight_decay"):
            raise ValueError(
                f"{self.family.name} has no weight_decay, so a parameter group cannot set one"
            )
        own = dataclasses.replace(settings, weight_decay=float(group["weight_decay"]))
        return hparams.pack(own, **dict(members or {}))

    def _init_state(self, param: torch.Tensor) -> dict[str, Any]:
        state = self.state[param]
        state["step"] = 0
        state["carry"] = tuple(self.family.carry)
        for name in self.family.state_names(self.hp):
            if self.family.init_state is not None:
                state[name] = self.family.init_state(name, param, self.hp)
            else:
                state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, hp in zip(self.param_groups, self.group_hp, strict=True):
            for batch in self._batches(group):
                self._step_batch(group, hp, *batch)
        return loss

    def _batches(self, group: dict) -> list[tuple[list, list, list]]:
        """Parameters with a gradient, bucketed by their step count: usually one bucket,
        since every parameter normally receives a gradient at every step."""
        buckets: dict[int, tuple[list, list, list]] = {}
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError(f"{self.family.name} does not support sparse gradients")
            state = self.state[param] or self._init_state(param)
            bucket = buckets.setdefault(state["step"], ([], [], []))
            bucket[0].append(param)
            bucket[1].append(param.grad)
            bucket[2].append(state)
        return list(buckets.values())

    def _step_batch(self, group: dict, hp: Any, params: list, grads: list, states: list) -> None:
        t = states[0]["step"] + 1
        coeffs, carry = self.family.coefficients(hp, t, states[0]["carry"])
        lists = {name: [s[name] for s in states] for name in self.family.state_names(hp)}
        foreach = group["foreach"]
        if foreach is None:
            foreach = all(p.is_cuda for p in params)
        if self.family.decoupled_decay and hp.weight_decay:
            shrink_(params, 1.0 - step_size(hp, t) * hp.weight_decay, foreach)
        self.family.update(params, grads, lists, hp, coeffs, foreach)
        for state in states:
            state["step"] = t
            state["carry"] = carry


def build(
    spec: OptimizerSpec,
    params: Iterable[torch.Tensor],
    settings: Any,
    *,
    foreach: bool | None = None,
    members: Mapping[str, torch.Tensor] | None = None,
    scheduler: bool = True,
) -> tuple[Optimizer, Any]:
    """The optimizer for ``spec`` with ``settings``, and the LambdaLR that applies the
    step-size schedule to a ``torch.optim`` class (None for native families, which apply
    it themselves, or with ``scheduler=False`` for a caller that sets each group's lr).
    ``members`` (stacked jobs) is only for native families."""
    check_horizon(settings)
    if spec.native is not None:
        return DeclaredOptimizer(
            params, spec.native, settings, foreach=foreach, members=members
        ), None
    if members:
        raise ValueError(f"{spec.name} cannot take per-member hyper-parameters")
    impl: TorchClass = spec.impl  # type: ignore[assignment]
    optimizer = impl.load()(params, **impl.kwargs(settings))
    if not scheduler or settings.lr_schedule == "constant":
        return optimizer, None
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: lr_factor(settings, done + 1)
    )
    return optimizer, schedule


def build_named(
    name: str, params: Iterable[torch.Tensor], hparams: Mapping[str, Any] | None = None
) -> tuple[Optimizer, Any]:
    """A built-in optimizer by name with these hyper-parameters over its defaults (for
    tests, benchmarks and notebooks; jobs resolve their settings from the task)."""
    spec = BUILTINS[name]
    return build(spec, params, spec.resolve(("", dict(hparams or {}))))


__all__ = ["DeclaredOptimizer", "build", "build_named"]
