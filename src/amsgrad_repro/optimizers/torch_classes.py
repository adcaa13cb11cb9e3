"""PyTorch's own optimizers, selectable by name: the framework forms of Adam and AMSGrad,
AdamW and its AMSGrad form, RAdam, NAdam and the classic baselines (SGD, with Nesterov
momentum as today's reference baseline of image classification).

They run as ``torch.optim`` classes (built with ``spec.torch_kwargs``; α's schedule comes
from a LambdaLR). ``torch-adam`` and ``torch-amsgrad`` have a native twin, the paper's
update with bias correction switched on, which computes the same steps (tested) and lets
the compiled kernel run them on the 1-D problems; the others take the generic tensor path
there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amsgrad_repro.optimizers.hparams import flag, real
from amsgrad_repro.optimizers.lazy_torch import torch
from amsgrad_repro.optimizers.schedules import StepSize
from amsgrad_repro.optimizers.spec import OptimizerSpec, TorchClass, Twin, torch_kwargs


@dataclass(frozen=True)
class AdamLikeSettings(StepSize):
    beta1: float = real(0.9, "β1", 0.0, 1.0, high_open=True, tunable=True, symbol="β1")
    beta2: float = real(0.999, "β2", 0.0, 1.0, high_open=True, tunable=True, symbol="β2")
    eps: float = real(1e-8, "ε added to √v̂", 0.0, symbol="ε")
    weight_decay: float = real(
        0.0, "L2 penalty added to the gradient", 0.0, symbol="L2", show_zero=False
    )


@dataclass(frozen=True)
class AdamWSettings(AdamLikeSettings):
    weight_decay: float = real(
        1e-2,
        "λ, decoupled weight decay: x ← x·(1 − α_t·λ) before the step",
        0.0,
        symbol="λ",
        show_zero=False,
    )


@dataclass(frozen=True)
class NAdamSettings(AdamLikeSettings):
    momentum_decay: float = real(4e-3, "ψ, the momentum decay of NAdam", 0.0)


@dataclass(frozen=True)
class SGDSettings(StepSize):
    momentum: float = real(0.0, "heavy-ball momentum", 0.0, symbol="μ")
    nesterov: bool = flag(False, "Nesterov momentum")
    weight_decay: float = real(0.0, "L2 penalty", 0.0, symbol="L2", show_zero=False)


@dataclass(frozen=True)
class NesterovSettings(StepSize):
    """SGD with Nesterov momentum, which PyTorch defines only for a momentum > 0 (and no
    dampening, which these settings do not have)."""

    momentum: float = real(0.9, "Nesterov momentum μ", 0.0, 1.0, low_open=True, symbol="μ")
    weight_decay: float = real(0.0, "L2 penalty", 0.0, symbol="L2", show_zero=False)


@dataclass(frozen=True)
class AdagradSettings(StepSize):
    eps: float = real(1e-10, "ε", 0.0, symbol="ε")
    weight_decay: float = real(0.0, "L2 penalty", 0.0)


@dataclass(frozen=True)
class RMSpropSettings(StepSize):
    alpha: float = real(0.99, "smoothing constant of the squared-gradient average", 0.0, 1.0)
    eps: float = real(1e-8, "ε", 0.0, symbol="ε")
    momentum: float = real(0.0, "momentum", 0.0)
    weight_decay: float = real(0.0, "L2 penalty", 0.0)


def _class(name: str) -> Callable[[], type]:
    return lambda: getattr(torch.optim, name)


def _spec(
    name: str,
    cls: str,
    settings: type,
    summary: str,
    *,
    kwargs: Callable[[Any], dict[str, Any]] = torch_kwargs,
    twin: Twin | None = None,
    group: str = "other",
    paper: str = "",
    **defaults: Any,
) -> OptimizerSpec:
    return OptimizerSpec(
        name=name,
        summary=summary,
        source=f"{paper}; torch.optim.{cls}" if paper else f"torch.optim.{cls}",
        settings=settings,
        impl=TorchClass(load=_class(cls), kwargs=kwargs, twin=twin),
        defaults=defaults,
        group=group,
    )


def _with(**fixed: Any) -> Callable[[Any], dict[str, Any]]:
    return lambda settings: {**torch_kwargs(settings), **fixed}


def _adam_twin(second_moment: str) -> Twin:
    return Twin(
        spec="amsgrad" if second_moment == "max" else "adam",
        fixed={"bias_correction": True},
        zero_only=("weight_decay",),
    )


SPECS = (
    _spec(
        "torch-adam",
        "Adam",
        AdamLikeSettings,
        "Adam, PyTorch form: bias-corrected, ε 1e-8",
        kwargs=_with(amsgrad=False),
        twin=_adam_twin("ema"),
        group="paper",
    ),
    _spec(
        "torch-amsgrad",
        "Adam",
        AdamLikeSettings,
        "AMSGrad, PyTorch form: max of the raw v over the current correction, ε",
        kwargs=_with(amsgrad=True),
        twin=_adam_twin("max"),
        group="paper",
    ),
    _spec(
        "adamw",
        "AdamW",
        AdamWSettings,
        "AdamW: decoupled weight decay",
        kwargs=_with(amsgrad=False),
        paper="Loshchilov & Hutter, ICLR 2019",
    ),
    _spec(
        "adamw-amsgrad",
        "AdamW",
        AdamWSettings,
        "AdamW in AMSGrad form: max of the raw v over the current correction, decoupled decay",
        kwargs=_with(amsgrad=True),
        paper="Loshchilov & Hutter, ICLR 2019; Reddi et al., ICLR 2018",
    ),
    _spec(
        "radam",
        "RAdam",
        AdamLikeSettings,
        "RAdam: rectified adaptive step",
        paper="Liu et al., ICLR 2020",
    ),
    _spec(
        "nadam",
        "NAdam",
        NAdamSettings,
        "NAdam: Nesterov momentum in Adam",
        paper="Dozat, ICLR 2016 workshop",
    ),
    _spec("sgd", "SGD", SGDSettings, "SGD (optionally with momentum)", lr=1e-2),
    _spec(
        "sgd-nesterov",
        "SGD",
        NesterovSettings,
        "SGD with Nesterov momentum (the reference baseline of image classification)",
        kwargs=_with(nesterov=True),
        paper="Sutskever et al., ICML 2013",
        lr=1e-1,
    ),
    _spec("adagrad", "Adagrad", AdagradSettings, "Adagrad", lr=1e-2),
    _spec("rmsprop", "RMSprop", RMSpropSettings, "RMSprop", lr=1e-2),
)
