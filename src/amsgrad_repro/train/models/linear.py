"""The paper's two MNIST models (Section 5, Figure 2 top row).

- ``logreg``: multiclass logistic regression, 784 → 10 softmax (the softmax lives in the
  cross-entropy loss, so the model returns logits).
- ``mlp``: one hidden layer, 784 → 100 ReLU → 10.

The paper does not say how weights are initialised; PyTorch's default ``nn.Linear`` init
(Kaiming-uniform weights, uniform biases) is kept, or ``init: zeros`` for logistic regression
(a convex problem, where zero is the textbook start).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


class LogisticRegression(nn.Module):
    """Flattened image → class logits."""

    def __init__(self, in_features: int, num_classes: int, init: str = "torch_default") -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)
        if init == "zeros":
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        elif init != "torch_default":
            raise ValueError(f"logreg init must be torch_default or zeros, got {init!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def stack_layers(self) -> list[nn.Module]:
        """The layers after flattening, in order (``train.stacked`` stacks them)."""
        return [self.linear]


class MLP(nn.Module):
    """Flattened image → hidden ReLU layer → class logits."""

    def __init__(self, in_features: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x.flatten(1))))

    def stack_layers(self) -> list[nn.Module]:
        return [self.hidden, nn.ReLU(), self.out]


def _sizes(meta: Mapping[str, Any]) -> tuple[int, int]:
    shape: Sequence[int] = meta["image_shape"]
    return math.prod(shape), int(meta.get("num_classes") or 10)


def _options(model: Mapping[str, Any], allowed: set[str]) -> dict[str, Any]:
    options = {k: v for k, v in model.items() if k != "arch"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"unknown {model.get('arch')} option(s): {sorted(unknown)}")
    return options


def build_logreg(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    options = _options(model, {"init"})
    return LogisticRegression(*_sizes(meta), init=options.get("init", "torch_default"))


def build_mlp(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    options = _options(model, {"hidden"})
    features, classes = _sizes(meta)
    return MLP(features, int(options.get("hidden", 100)), classes)


__all__ = ["MLP", "LogisticRegression", "build_logreg", "build_mlp"]
