"""ResNet-20, the CIFAR variant of He et al. 2016 ("Deep Residual Learning", Section 4.2).

conv 3×3 16 → BatchNorm → ReLU, then 3 stages × 3 basic blocks with 16 / 32 / 64 channels
(each block: conv 3×3 → BN → ReLU → conv 3×3 → BN, plus the shortcut, then ReLU; stride 2
in the first block of stages 2 and 3), global average pool, FC → classes. Convolutions
have no bias (BatchNorm follows each).

Shortcuts (``shortcut``): ``A`` (default, the paper's choice for CIFAR): identity, and where
the shape changes the input subsampled by 2 and zero-padded with channels, no parameters;
3 input channels give 269,722 parameters, 1 input channel 269,434. ``B``: a 1×1 stride-2
convolution with BatchNorm where the shape changes: 272,474 / 272,186.

Initialisation: He (Kaiming) normal for the convolutions, fan-out, as the paper's
reference [13]; BatchNorm γ = 1, β = 0; the FC layer keeps PyTorch's default. The input
channels come from the dataset (1 for Fashion-MNIST, 3 for CIFAR-10); any side divisible
by 4 works (28 → 28 → 14 → 7, 32 → 32 → 16 → 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

STAGES: tuple[int, int, int] = (16, 32, 64)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and the shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.reshape = stride != 1 or in_ch != out_ch
        self.pad_channels = out_ch - in_ch
        self.stride = stride
        self.project: nn.Module | None = None
        if self.reshape and shortcut == "B":
            self.project = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.reshape:
            return x
        if self.project is not None:
            return self.project(x)
        x = x[:, :, :: self.stride, :: self.stride]
        before = self.pad_channels // 2
        return F.pad(x, (0, 0, 0, 0, before, self.pad_channels - before))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-(6n+2) for small images; n = 3 is ResNet-20. Returns logits."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        blocks_per_stage: int = 3,
        shortcut: str = "A",
    ) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"resnet shortcut must be 'A' or 'B', got {shortcut!r}")
        self.conv = nn.Conv2d(in_channels, STAGES[0], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(STAGES[0])
        blocks: list[nn.Module] = []
        in_ch = STAGES[0]
        for stage, out_ch in enumerate(STAGES):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride, shortcut))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_ch, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def expected_parameters(in_channels: int, shortcut: str = "A", classes: int = 10) -> int:
    """Closed-form count of ResNet-20's parameters (BatchNorm γ and β included)."""
    total = 9 * in_channels * STAGES[0] + 2 * STAGES[0]
    in_ch = STAGES[0]
    for stage, out_ch in enumerate(STAGES):
        for index in range(3):
            total += 9 * in_ch * out_ch + 9 * out_ch * out_ch + 4 * out_ch
            if stage > 0 and index == 0 and shortcut == "B":
                total += in_ch * out_ch + 2 * out_ch
            in_ch = out_ch
    return total + (in_ch + 1) * classes


def build_resnet20(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    options = {k: v for k, v in dict(model or {}).items() if k != "arch"}
    unknown = set(options) - {"shortcut"}
    if unknown:
        raise ValueError(f"unknown resnet20 option(s): {sorted(unknown)} (known: shortcut)")
    channels = int(meta["image_shape"][0])
    classes = int(meta.get("num_classes") or 10)
    return ResNet(channels, classes, 3, str(options.get("shortcut", "A")))


__all__ = ["BasicBlock", "ResNet", "build_resnet20", "expected_parameters"]
