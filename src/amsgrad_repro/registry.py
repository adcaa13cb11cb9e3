"""The one place that maps config names to optimizers and task kinds.

An optimizer entry says how to build it from a task's hyper-parameters (``lr``,
``lr_schedule``, ``betas``, ``eps``, ...) and which defaults it brings; the paper's forms
default to ε = 0 and no bias correction, the PyTorch forms to PyTorch's own defaults. Add an
optimizer by adding an entry here; every task can then select it by name in ``config.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

HParams = Mapping[str, Any]


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one named optimizer.

    ``kernel_flags`` is set for optimizers the compiled 1-D kernel of the synthetic problems
    can run (the paper family and the PyTorch Adam forms, which are the paper update with
    bias correction and ε switched on). ``own_schedule`` says the optimizer applies
    ``lr_schedule`` itself; the others get a ``LambdaLR`` from :func:`build_optimizer`.
    """

    name: str
    description: str
    defaults: dict[str, Any]
    build: Callable[[Iterable[Any], dict[str, Any]], Any]
    own_schedule: bool = False
    kernel_flags: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    allowed: frozenset[str] = field(default_factory=frozenset)


COMMON_HPARAMS = frozenset({"lr", "lr_schedule"})


def _paper(variant: str) -> Callable[[Iterable[Any], dict[str, Any]], Any]:
    def build(params: Iterable[Any], hp: dict[str, Any]) -> Any:
        from amsgrad_repro.optim import PaperAdam

        return PaperAdam(
            params,
            lr=hp["lr"],
            betas=tuple(hp["betas"]),
            variant=variant,
            lr_schedule=hp["lr_schedule"],
            beta1_schedule=hp["beta1_schedule"],
            beta1_decay=hp["beta1_decay"],
            bias_correction=hp["bias_correction"],
            eps=hp["eps"],
            bounds=tuple(hp["bounds"]) if hp.get("bounds") is not None else None,
        )

    return build


def _paper_kernel(variant: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def flags(hp: dict[str, Any]) -> dict[str, Any]:
        return dict(
            variant=variant,
            lr=hp["lr"],
            lr_schedule=hp["lr_schedule"],
            beta1=hp["betas"][0],
            beta2=hp["betas"][1],
            beta1_schedule=hp["beta1_schedule"],
            beta1_decay=hp["beta1_decay"],
            bias_correction=hp["bias_correction"],
            eps=hp["eps"],
        )

    return flags


def _torch_adam(amsgrad: bool) -> Callable[[Iterable[Any], dict[str, Any]], Any]:
    def build(params: Iterable[Any], hp: dict[str, Any]) -> Any:
        import torch

        return torch.optim.Adam(
            params,
            lr=hp["lr"],
            betas=tuple(hp["betas"]),
            eps=hp["eps"],
            weight_decay=hp["weight_decay"],
            amsgrad=amsgrad,
        )

    return build


def _torch_adam_kernel(amsgrad: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def flags(hp: dict[str, Any]) -> dict[str, Any]:
        if hp["weight_decay"]:
            raise ValueError("the synthetic kernel does not model weight decay")
        return dict(
            variant="amsgrad" if amsgrad else "adam",
            lr=hp["lr"],
            lr_schedule=hp["lr_schedule"],
            beta1=hp["betas"][0],
            beta2=hp["betas"][1],
            beta1_schedule="constant",
            beta1_decay=1.0,
            bias_correction=True,
            eps=hp["eps"],
        )

    return flags


def _torch_simple(cls_name: str, keys: tuple[str, ...]) -> Callable[..., Any]:
    def build(params: Iterable[Any], hp: dict[str, Any]) -> Any:
        import torch

        cls = getattr(torch.optim, cls_name)
        return cls(params, lr=hp["lr"], **{k: hp[k] for k in keys})

    return build


PAPER_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "lr_schedule": "constant",
    "betas": [0.9, 0.99],
    "beta1_schedule": "constant",
    "beta1_decay": 1.0,
    "bias_correction": False,
    "eps": 0.0,
    "bounds": None,
}
TORCH_ADAM_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "lr_schedule": "constant",
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.0,
}


def _paper_spec(name: str, description: str) -> OptimizerSpec:
    return OptimizerSpec(
        name=name,
        description=description,
        defaults=PAPER_DEFAULTS,
        build=_paper(name),
        own_schedule=True,
        kernel_flags=_paper_kernel(name),
        allowed=frozenset(PAPER_DEFAULTS),
    )


def _torch_adam_spec(name: str, amsgrad: bool, description: str) -> OptimizerSpec:
    return OptimizerSpec(
        name=name,
        description=description,
        defaults=TORCH_ADAM_DEFAULTS,
        build=_torch_adam(amsgrad),
        kernel_flags=_torch_adam_kernel(amsgrad),
        allowed=frozenset(TORCH_ADAM_DEFAULTS),
    )


def _simple_spec(name: str, cls_name: str, defaults: dict[str, Any], doc: str) -> OptimizerSpec:
    keys = tuple(k for k in defaults if k not in COMMON_HPARAMS)
    return OptimizerSpec(
        name=name,
        description=doc,
        defaults={"lr": 1e-2, "lr_schedule": "constant", **defaults},
        build=_torch_simple(cls_name, keys),
        allowed=frozenset(defaults) | COMMON_HPARAMS,
    )


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        _paper_spec("adam", "Adam as in the paper (Algorithm 1): no bias correction, no ε"),
        _paper_spec("amsgrad", "AMSGrad as in the paper (Algorithm 2): v̂ = max of raw v"),
        _paper_spec("adamnc", "AdamNC (Section 4): β2t = 1 − 1/t"),
        _torch_adam_spec("torch-adam", False, "torch.optim.Adam"),
        _torch_adam_spec("torch-amsgrad", True, "torch.optim.Adam(amsgrad=True)"),
        _simple_spec("sgd", "SGD", {"momentum": 0.0, "nesterov": False}, "torch.optim.SGD"),
        _simple_spec("adagrad", "Adagrad", {"eps": 1e-10}, "torch.optim.Adagrad"),
        _simple_spec("rmsprop", "RMSprop", {"alpha": 0.99, "eps": 1e-8}, "torch.optim.RMSprop"),
    )
}

# Task kinds: each kind has a runner module; tasks in config.yaml name their kind.
TASK_KINDS: dict[str, str] = {
    "synthetic": "amsgrad_repro.synthetic",
    "classifier": "amsgrad_repro.train.kinds.classifier",
    "vae": "amsgrad_repro.train.kinds.vae",
}


def resolve_hparams(name: str, hparams: HParams) -> dict[str, Any]:
    """The optimizer's defaults with the task's values on top, restricted to the keys it
    understands; a key it does not understand is an error, not silently ignored, unless it
    is a paper-only option (``beta1_schedule``, ``bias_correction``, ...) shared by a task
    that mixes paper and PyTorch optimizers."""
    spec = OPTIMIZERS[name]
    resolved = dict(spec.defaults)
    for key, value in hparams.items():
        if key in spec.allowed:
            resolved[key] = value
        elif key not in PAPER_DEFAULTS and key not in TORCH_ADAM_DEFAULTS:
            raise ValueError(f"optimizer {name!r} has no hyper-parameter {key!r}")
    return resolved


def build_optimizer(name: str, params: Iterable[Any], hparams: HParams) -> tuple[Any, Any]:
    """Build the named optimizer and, if it does not schedule α itself, a LambdaLR that
    applies ``lr_schedule`` (α/√t at step t)."""
    spec = OPTIMIZERS[name]
    hp = resolve_hparams(name, hparams)
    optimizer = spec.build(params, hp)
    scheduler = None
    if not spec.own_schedule and hp["lr_schedule"] == "inv_sqrt":
        import torch

        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 1.0 / math.sqrt(step + 1)
        )
    return optimizer, scheduler
