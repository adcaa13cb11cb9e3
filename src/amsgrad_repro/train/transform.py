"""A kind's input transform, on its own so that ``train.api`` (the kinds' interface) and
``train.batches`` (which applies it) both name it without importing each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only in annotations: this module imports no torch
    import torch


@dataclass(frozen=True)
class InputTransform:
    """(uint8 batch, training?, generator) -> float model input, on the batch's device."""

    apply: Callable[[torch.Tensor, bool, torch.Generator | None], torch.Tensor]
    # Each image's output depends on that image alone and on nothing random, so applying
    # it once to a whole split gives exactly the values applying it per batch gives.
    pointwise: bool = False

    def __call__(
        self, batch: torch.Tensor, training: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        return self.apply(batch, training, generator)
