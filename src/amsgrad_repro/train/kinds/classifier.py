"""Image classification with softmax cross-entropy (logistic regression, the MLP, CIFARNET).

Input handling is the task's ``input`` block: ``scale: unit`` (x/255, the MNIST models) or
``standardize`` (per-pixel mean/std of the training split, CIFARNET), and ``augment``
``none``/``flip``/``crop_flip`` (``crop_padding`` pixels of zero padding, default 4); all
batched tensor ops on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from amsgrad_repro.train.api import (
    KIND_METRICS,
    BatchLoss,
    InputTransform,
    Settings,
    TaskKind,
    unit_scale,
)
from amsgrad_repro.train.models.cifarnet import PixelStandardizer, augment


def _input_options(settings: Settings) -> tuple[str, str, int]:
    options: Mapping[str, Any] = settings.get("input") or {}
    scale = options.get("scale", "unit")
    augment_mode = options.get("augment", "none")
    crop_padding = int(options.get("crop_padding", 4))
    if scale not in ("unit", "standardize"):
        raise ValueError(f"input.scale must be unit or standardize, got {scale!r}")
    if crop_padding < 0:
        raise ValueError(f"input.crop_padding must be >= 0 pixels, got {crop_padding}")
    return scale, augment_mode, crop_padding


class Classifier(TaskKind):
    name = "classifier"
    metric_names = KIND_METRICS["classifier"]
    stackable = True

    def input_transform(self, train_x: torch.Tensor, settings: Settings) -> InputTransform:

        scale, augment_mode, crop_padding = _input_options(settings)
        standardize = PixelStandardizer(train_x) if scale == "standardize" else None

        def transform(batch: torch.Tensor, training: bool, generator: torch.Generator | None):
            x = standardize(batch) if standardize else unit_scale(batch, training, generator)
            if training and augment_mode != "none":
                x = augment(x, augment_mode, generator, crop_padding)
            return x

        return InputTransform(transform, pointwise=augment_mode == "none")

    def batch_loss(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> BatchLoss:
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.detach().argmax(1) == targets).float().mean()
        return loss, {"accuracy": accuracy}

    def member_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> BatchLoss:
        """Per-member batch means of a stacked model's logits ``[M, B, classes]`` against
        ``[M, B]`` (or shared ``[B]``) targets: losses ``[M]`` and accuracies ``[M]``."""
        members, batch = logits.shape[:2]
        targets = targets.expand(members, batch)
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        hits = (logits.detach().argmax(2) == targets).float()
        return losses.view(members, batch).mean(1), {"accuracy": hits.mean(1)}


KIND = Classifier()
