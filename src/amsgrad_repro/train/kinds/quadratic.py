"""A model that is its own loss on float points (DeepOBS's ``quadratic_deep``: the model
maps a batch of points x to ½(θ − x)ᵀQ(θ − x) averaged over it). The points come from a
generated dataset (``data.generated``) already in float32, so the input transform passes
them through; there are no labels and no metrics besides the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from amsgrad_repro.train.api import KIND_METRICS, BatchLoss, Settings, TaskKind
from amsgrad_repro.train.transform import InputTransform


def as_float32(batch: torch.Tensor, training: bool, generator: torch.Generator | None):
    """The stored float32 points, unchanged (a no-op for them; a cast for anything else)."""
    return batch.to(torch.float32)


class Quadratic(TaskKind):
    name = "quadratic"
    metric_names = KIND_METRICS["quadratic"]

    def input_transform(self, train_x: torch.Tensor, settings: Settings) -> InputTransform:
        if train_x.dtype != torch.float32:
            raise ValueError(
                f"the quadratic kind reads float32 points (a generated dataset), got "
                f"{train_x.dtype}: give the task a dataset with format: generated"
            )
        return InputTransform(as_float32, pointwise=True)

    def batch_loss(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> BatchLoss:
        return model(inputs), {}


KIND = Quadratic()
