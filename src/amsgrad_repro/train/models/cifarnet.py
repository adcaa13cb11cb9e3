"""CIFARNET, the paper's CIFAR-10 network (Reddi et al. 2018, Section 5, Figure 2 bottom row).

The paper gives the layer list only: conv 64@6×6 → ReLU → 2×2 max-pool → LRN → conv 64@6×6 →
ReLU → LRN → 2×2 max-pool → FC 384 → dropout 0.5 → FC 192 → FC 10. It is the TensorFlow
CIFAR-10 tutorial's network with 6×6 kernels and 2×2 pools, so where the paper is silent we
take the tutorial's choices (each is a config option under the task's ``model`` block):

- padding ``same`` (the tutorial's): 32 → 16 → 8, so FC 384 sees 8·8·64 = 4096 features.
  ``valid`` gives 32 → 27 → 13 → 8 → 4 (1024 features). The 6×6 kernel is padded as
  TensorFlow does, asymmetrically: 2 pixels before, 3 after.
- LRN with the tutorial's parameters: depth_radius 4, bias 1.0, alpha 0.001/9, beta 0.75,
  in TensorFlow's parameterisation ``x / (bias + alpha·Σ_{window} x²)^beta`` over
  2·depth_radius + 1 channels (PyTorch's ``LocalResponseNorm`` would need alpha·size, as
  it divides alpha by the window size; see :class:`TFLocalResponseNorm`).
- initialisation ``tf_tutorial``: truncated normal (±2σ) weights, σ = 0.05 for the convs,
  0.04 for the two hidden FC layers, 1/192 for the output layer; biases 0 (conv1, output)
  and 0.1 (conv2, FC 384, FC 192). ``torch_default`` keeps PyTorch's Kaiming-uniform init.
  The tutorial's L2 weight decay is not part of the paper's setup and is left out.
- input: per-pixel standardisation (mean and std of each of the 3·32·32 pixel positions
  over the training split; the paper does not say) computed once on the device, and no
  augmentation by default. ``augment: flip`` or ``crop_flip`` (4-pixel zero-pad random
  crop + horizontal flip) are available as batched tensor ops on the device.

Layout and speed switches (``channels_last``, ``compile``) change no mathematics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 10


@dataclass(frozen=True)
class CifarNetSpec:
    """The model options that a config may set (``tasks.cifarnet.model``)."""

    padding: str = "same"
    init: str = "tf_tutorial"
    dropout: float = 0.5
    lrn_depth_radius: int = 4
    lrn_bias: float = 1.0
    lrn_alpha: float = 0.001 / 9.0
    lrn_beta: float = 0.75
    conv_channels: int = 64
    kernel_size: int = 6
    fc_sizes: tuple[int, int] = (384, 192)

    @classmethod
    def from_settings(cls, model: Mapping[str, Any] | None) -> CifarNetSpec:
        """Build from a task's ``model`` block, ignoring its ``arch`` key."""
        options = {k: v for k, v in dict(model or {}).items() if k != "arch"}
        if "fc_sizes" in options:
            options["fc_sizes"] = tuple(options["fc_sizes"])
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown CIFARNET option(s): {sorted(unknown)}")
        spec = cls(**options)
        if spec.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {spec.padding!r}")
        if spec.init not in ("tf_tutorial", "torch_default"):
            raise ValueError(f"init must be 'tf_tutorial' or 'torch_default', got {spec.init!r}")
        return spec


class TFLocalResponseNorm(nn.Module):
    """Local response normalisation with TensorFlow's parameters.

    TF: ``x / (bias + alpha·Σ x²)^beta`` over the ``2·depth_radius + 1`` neighbouring
    channels. The windowed sum is a 1×1 convolution of x² with a 0/1 band matrix: the same
    sum as ``F.local_response_norm`` (which averages through ``avg_pool3d``), about 4× faster
    forward and backward on CPU, and a plain matmul on a GPU.
    """

    def __init__(
        self, channels: int, depth_radius: int, bias: float, alpha: float, beta: float
    ) -> None:
        super().__init__()
        index = torch.arange(channels)
        band = ((index[:, None] - index[None, :]).abs() <= depth_radius).float()
        self.register_buffer("band", band[:, :, None, None], persistent=False)
        self.bias, self.alpha, self.beta = bias, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = F.conv2d(x * x, self.band)
        return x * (self.bias + self.alpha * window).pow(-self.beta)


def _same_padding(kernel: int) -> tuple[int, int, int, int]:
    """TensorFlow's ``SAME`` padding for stride 1: the odd extra pixel goes after.
    Explicit, because PyTorch's ``padding='same'`` copies the input for even kernels."""
    before = (kernel - 1) // 2
    after = kernel - 1 - before
    return (before, after, before, after)


def _feature_side(image_side: int, kernel: int, padding: str) -> int:
    """Spatial side after the two conv + 2×2 pool blocks."""
    side = image_side
    for _ in range(2):
        if padding == "valid":
            side = side - kernel + 1
        side //= 2
    return side


class CifarNet(nn.Module):
    """The paper's CIFARNET; returns logits."""

    def __init__(self, spec: CifarNetSpec | None = None, image_shape=(3, 32, 32)) -> None:
        super().__init__()
        spec = spec or CifarNetSpec()
        self.spec = spec
        channels, side, _ = image_shape
        c = spec.conv_channels
        lrn = (c, spec.lrn_depth_radius, spec.lrn_bias, spec.lrn_alpha, spec.lrn_beta)
        self.pad = _same_padding(spec.kernel_size) if spec.padding == "same" else None
        self.conv1 = nn.Conv2d(channels, c, spec.kernel_size)
        self.norm1 = TFLocalResponseNorm(*lrn)
        self.conv2 = nn.Conv2d(c, c, spec.kernel_size)
        self.norm2 = TFLocalResponseNorm(*lrn)
        features = c * _feature_side(side, spec.kernel_size, spec.padding) ** 2
        self.fc1 = nn.Linear(features, spec.fc_sizes[0])
        self.dropout = nn.Dropout(spec.dropout)
        self.fc2 = nn.Linear(spec.fc_sizes[0], spec.fc_sizes[1])
        self.fc3 = nn.Linear(spec.fc_sizes[1], NUM_CLASSES)
        if spec.init == "tf_tutorial":
            self._tf_tutorial_init()

    def _conv(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        return conv(F.pad(x, self.pad) if self.pad else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(F.max_pool2d(F.relu(self._conv(self.conv1, x)), 2))
        x = F.max_pool2d(self.norm2(F.relu(self._conv(self.conv2, x))), 2)
        x = torch.flatten(x, 1)
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc3(F.relu(self.fc2(x)))

    @torch.no_grad()
    def _tf_tutorial_init(self) -> None:
        """The TF CIFAR-10 tutorial's truncated-normal weights and constant biases."""
        layers = (
            (self.conv1, 5e-2, 0.0),
            (self.conv2, 5e-2, 0.1),
            (self.fc1, 0.04, 0.1),
            (self.fc2, 0.04, 0.1),
            (self.fc3, 1.0 / self.spec.fc_sizes[1], 0.0),
        )
        for layer, std, bias in layers:
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.constant_(layer.bias, bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- Input pipeline: batched tensor ops on the device ----------------------------------


class PixelStandardizer:
    """Per-pixel standardisation with statistics of the training split, kept on the device.

    ``(x/255 − mean) / std`` per channel and pixel position; std is floored so a constant
    pixel (possible in tiny test sets) does not divide by zero.
    """

    def __init__(self, images_uint8: torch.Tensor, chunk: int = 8192) -> None:
        total = torch.zeros(images_uint8.shape[1:], dtype=torch.float64, device=images_uint8.device)
        squares = torch.zeros_like(total)
        for start in range(0, images_uint8.shape[0], chunk):
            block = images_uint8[start : start + chunk].to(torch.float64) / 255.0
            total += block.sum(0)
            squares += (block * block).sum(0)
        count = max(images_uint8.shape[0], 1)
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0.0)
        self.mean = mean.to(torch.float32)
        self.std = var.sqrt().clamp_min(1e-3).to(torch.float32)

    def __call__(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        return (batch_uint8.to(torch.float32) / 255.0 - self.mean) / self.std


def augment(
    batch: torch.Tensor, mode: str, generator: torch.Generator, padding: int = 4
) -> torch.Tensor:
    """Random horizontal flip (``flip``) and a ``padding``-pixel zero-padded random crop of
    the original size (``crop_flip``, the ResNet recipe's; default 4 pixels), drawn per
    example from ``generator`` (the engine's checkpointed kind generator, so a resumed run
    draws what an uninterrupted one does) and applied to the whole batch at once."""
    if mode == "none":
        return batch
    if mode not in ("flip", "crop_flip"):
        raise ValueError(f"augment must be none, flip or crop_flip, got {mode!r}")
    n, _, h, w = batch.shape
    device = batch.device
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
    if mode == "crop_flip" and padding > 0:
        pad = int(padding)
        padded = F.pad(batch, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
        index = torch.arange(n, device=device)[:, None, None, None]
        chans = torch.arange(batch.shape[1], device=device)[None, :, None, None]
        batch = padded[index, chans, rows, cols]
    return batch


def expected_parameters(spec: CifarNetSpec | None = None, side: int = 32) -> int:
    """Closed-form parameter count, used by the tests to check the layer sizes."""
    spec = spec or CifarNetSpec()
    c, k = spec.conv_channels, spec.kernel_size
    features = c * _feature_side(side, k, spec.padding) ** 2
    fc1, fc2 = spec.fc_sizes
    return (
        (3 * k * k + 1) * c
        + (c * k * k + 1) * c
        + (features + 1) * fc1
        + (fc1 + 1) * fc2
        + (fc2 + 1) * NUM_CLASSES
    )


__all__ = [
    "CifarNet",
    "CifarNetSpec",
    "PixelStandardizer",
    "TFLocalResponseNorm",
    "augment",
    "count_parameters",
    "expected_parameters",
]
