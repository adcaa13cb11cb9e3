"""The reproduction report's convolutional VAE (its Section 2.2.4 and Figure 2(d)).

CelebA, 64×64×3 (``VaeSpec.celeba()``, the report's layers):

  encoder  conv 128@5×5 same → max-pool 8 → ReLU → conv 256@5×5 same → max-pool 8 → ReLU
           → FC 1024 → ReLU → (μ, log σ²), latent 100
  decoder  FC 16·16·256 → ReLU → BatchNorm → deconv 128@5×5 stride 2 → ReLU
           → deconv 3@5×5 stride 2 → sigmoid

Two max-pools of 8 take 64 → 8 → 1, so FC 1024 sees 1·1·256 features; we read the report's
figure literally and make the pool size an option. The stride-2 deconvolutions use
TensorFlow's ``SAME`` output size (16 → 32 → 64: padding 2, output padding 1).

MNIST / Fashion-MNIST, 28×28×1 (``VaeSpec.mnist()``): the same structure scaled down —
conv 32 → max-pool 2 → conv 64 → max-pool 2 (28 → 14 → 7) → FC 512 → latent 20; decoder
FC 7·7·64 → BatchNorm → deconv 32 → deconv 1 (7 → 14 → 28).

Likelihood: Bernoulli on the pixel intensities in [0, 1] (the decoder returns logits and the
loss uses ``binary_cross_entropy_with_logits`` for stability), plus the analytic KL to N(0, I).
Both are summed over pixels / latent units and averaged over the batch, so the reported
negative ELBO is in nats per image and equals ``recon + kl``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from amsgrad_repro.io import atomic_open


@dataclass(frozen=True)
class VaeSpec:
    """Layer sizes; defaults are the report's CelebA model."""

    image_shape: tuple[int, int, int] = (3, 64, 64)
    enc_channels: tuple[int, int] = (128, 256)
    kernel_size: int = 5
    pool: int = 8
    fc_hidden: int = 1024
    latent: int = 100
    dec_channels: tuple[int, int] = (256, 128)

    @classmethod
    def celeba(cls) -> VaeSpec:
        return cls()

    @classmethod
    def mnist(cls, image_shape: Sequence[int] = (1, 28, 28)) -> VaeSpec:
        return cls(
            image_shape=tuple(image_shape),
            enc_channels=(32, 64),
            pool=2,
            fc_hidden=512,
            latent=20,
            dec_channels=(64, 32),
        )

    @classmethod
    def from_settings(cls, model: Mapping[str, Any] | None, image_shape: Sequence[int]) -> VaeSpec:
        """The preset that fits the data (``size: auto``) or the named one, with the
        task's ``model`` options on top; ``image_shape`` always comes from the data."""
        options = {k: v for k, v in dict(model or {}).items() if k not in ("arch", "size")}
        size = (model or {}).get("size", "auto")
        if size == "auto":
            size = "celeba" if tuple(image_shape)[1] >= 64 else "mnist"
        if size not in ("celeba", "mnist"):
            raise ValueError(f"VAE size must be auto, celeba or mnist, got {size!r}")
        base = cls.mnist() if size == "mnist" else cls.celeba()
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown VAE option(s): {sorted(unknown)}")
        for key in ("enc_channels", "dec_channels"):
            if key in options:
                options[key] = tuple(options[key])
        return replace(base, **options, image_shape=tuple(image_shape))


class ConvVAE(nn.Module):
    """Encoder → (μ, log σ²) → reparameterised z → decoder logits."""

    def __init__(self, spec: VaeSpec | None = None) -> None:
        super().__init__()
        spec = spec or VaeSpec()
        self.spec = spec
        channels, side, width = spec.image_shape
        if side != width or side % 4:
            raise ValueError(f"VAE needs square images with side divisible by 4: {side}×{width}")
        encoded = side // spec.pool // spec.pool
        if encoded < 1:
            raise ValueError(f"pool {spec.pool} twice leaves nothing of a {side}-pixel side")
        c1, c2 = spec.enc_channels
        k = spec.kernel_size
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, c1, k, padding="same"),
            nn.MaxPool2d(spec.pool),
            nn.ReLU(),
            nn.Conv2d(c1, c2, k, padding="same"),
            nn.MaxPool2d(spec.pool),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * encoded * encoded, spec.fc_hidden),
            nn.ReLU(),
        )
        self.mu = nn.Linear(spec.fc_hidden, spec.latent)
        self.logvar = nn.Linear(spec.fc_hidden, spec.latent)
        d0, d1 = spec.dec_channels
        start = side // 4
        self.decoder = nn.Sequential(
            nn.Linear(spec.latent, d0 * start * start),
            nn.ReLU(),
            nn.Unflatten(1, (d0, start, start)),
            nn.BatchNorm2d(d0),
            nn.ConvTranspose2d(d0, d1, k, stride=2, padding=k // 2, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(d1, channels, k, stride=2, padding=k // 2, output_padding=1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        return self.mu(hidden), self.logvar(hidden)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of the reconstruction, μ and log σ². ``noise`` (ε ~ N(0, I)) is drawn by
        the caller from the run's generator so a seed fixes it; ``None`` decodes μ."""
        mu, logvar = self.encode(x)
        z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar


@dataclass
class ElboTerms:
    """Batch means, in nats per image: ``loss = recon + kl`` is the negative ELBO."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


LIKELIHOODS: tuple[str, ...] = ("bernoulli", "squared_error")


def negative_elbo(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
) -> ElboTerms:
    """Reconstruction term plus KL(q(z|x) ‖ N(0, I)), each summed per image and averaged
    over the batch. ``bernoulli``: the NLL of ``target`` (intensities in [0, 1]) given the
    logits. ``squared_error``: Σ (sigmoid(logits) − target)², DeepOBS's VAE loss (not a
    normalised likelihood: the sum of the two terms is DeepOBS's loss, not an ELBO)."""
    batch = target.shape[0]
    if likelihood == "bernoulli":
        recon = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / batch
    elif likelihood == "squared_error":
        recon = (torch.sigmoid(logits) - target).pow(2).sum() / batch
    else:
        raise ValueError(f"VAE likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    kl = -0.5 * torch.sum(1.0 + logvar - mu * mu - logvar.exp()) / batch
    return ElboTerms(loss=recon + kl, recon=recon, kl=kl)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def expected_parameters(spec: VaeSpec) -> int:
    """Closed-form parameter count, used by the tests to check the layer sizes."""
    channels, side, _ = spec.image_shape
    k2 = spec.kernel_size**2
    c1, c2 = spec.enc_channels
    d0, d1 = spec.dec_channels
    encoded = side // spec.pool // spec.pool
    start = side // 4
    return (
        (channels * k2 + 1) * c1
        + (c1 * k2 + 1) * c2
        + (c2 * encoded**2 + 1) * spec.fc_hidden
        + 2 * (spec.fc_hidden + 1) * spec.latent
        + (spec.latent + 1) * d0 * start**2
        + 2 * d0
        + (d0 * k2 + 1) * d1
        + (d1 * k2 + 1) * channels
    )


@torch.no_grad()
def image_grid(
    model: ConvVAE, images_uint8: torch.Tensor, samples: int, generator: torch.Generator
) -> torch.Tensor:
    """A uint8 [C, H, W] grid: row pairs of test images over their reconstructions (μ
    decoded), then rows of samples from the prior; drawn from ``generator`` so a seed
    fixes it. The model's train/eval mode is restored afterwards."""
    from torchvision.utils import make_grid

    was_training = model.training
    model.eval()
    weight = next(model.parameters())  # its device and dtype (performance.dtype)
    x = images_uint8.to(device=weight.device, dtype=weight.dtype) / 255.0
    logits, _, _ = model(x)
    z = torch.randn(samples, model.spec.latent, generator=generator, device=generator.device)
    drawn = torch.sigmoid(model.decode_logits(z.to(weight)))
    model.train(was_training)
    per_row = max(1, min(8, x.shape[0]))
    rows = []
    for start in range(0, x.shape[0], per_row):
        rows += [x[start : start + per_row], torch.sigmoid(logits[start : start + per_row])]
    tiles = torch.cat(rows + [drawn]).float().cpu()
    grid = make_grid(tiles, nrow=per_row, padding=2, pad_value=1.0)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8)


def save_grid_png(grid: torch.Tensor, path: str | Path) -> None:
    """Write a uint8 [C, H, W] grid as PNG, atomically."""
    from PIL import Image

    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="PNG")


def save_reconstructions(
    model: ConvVAE,
    images_uint8: torch.Tensor,
    path: str | Path,
    seed: int,
    samples: int = 16,
) -> None:
    """The per-run image grid (reconstructions and prior samples) as a PNG."""
    generator = torch.Generator().manual_seed(seed)
    save_grid_png(image_grid(model, images_uint8, samples, generator), path)


__all__ = [
    "ConvVAE",
    "ElboTerms",
    "VaeSpec",
    "count_parameters",
    "expected_parameters",
    "image_grid",
    "negative_elbo",
    "save_grid_png",
    "save_reconstructions",
]
