"""DeepOBS's Fashion-MNIST test problems and its noisy quadratic, as DeepOBS defines them
in its PyTorch code (fsschneider/DeepOBS, ``deepobs/pytorch/testproblems/``:
``testproblems_modules.py``, ``testproblems_utils.py``, ``quadratic_deep.py``,
``datasets/quadratic.py``). Re-written here, not copied; every difference is in docs/deep.md.

- ``fmnist_2c2d``: conv 32@5×5 TF-``same`` → ReLU → max-pool 2/2 → conv 64@5×5 → ReLU →
  max-pool 2/2 → FC 3136 → 1024 ReLU → FC 10; weights truncated normal (±2σ) σ 0.05,
  biases 0.05. 3,274,634 parameters.
- ``fmnist_mlp``: 784 → 1000 → 500 → 100 → 10 with ReLU; weights truncated normal σ 0.03,
  biases 0. 1,336,610 parameters.
- ``fmnist_vae``: encoder conv 64@4×4 stride 2, 2, 1 (TF ``same``), each leaky ReLU 0.3 and
  dropout 0.2; FC 3136 → 8 (mean) and FC 3136 → 8 (DeepOBS multiplies this one by 0.5 and
  calls it the log standard deviation, so it *is* log σ², the form the ``vae`` kind uses);
  decoder FC 8 → 24 → 49 (leaky ReLU 0.3), reshape 1×7×7, three transposed convs 64@4×4
  strides 2, 1, 1 (TF ``same``: 7 → 14 → 14 → 14), each ReLU and dropout 0.2, FC 12544 →
  784, sigmoid. Xavier-uniform weights, biases 0. 10,151,489 parameters. Loss: summed
  squared error of the sigmoid image plus the analytic KL, both averaged over the batch
  (``vae_loss_function``): ``VaeSpec.likelihood = "squared_error"`` selects it in the kind.
- ``quadratic_deep``: θ ∈ R^100 from ones, loss ½(θ − x)ᵀQ(θ − x) averaged over a batch of
  x. Q = Rᵀ diag(λ) R with λ: 90 draws U(0, 1) then 10 draws U(30, 60), R a Haar-random
  rotation (Diaconis–Shahshahani subgroup algorithm), all from one ``RandomState(42)``
  in that order; training x: 1000 draws N(0, 0.6²·I) from ``RandomState(42)``, test x the
  same from ``RandomState(43)``.

TensorFlow's ``same`` padding is reproduced exactly (the odd pixel after), as DeepOBS does
with explicit pads; for the fixed 28×28 input the pads are constants computed once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from amsgrad_repro.data.generated import deepobs_quadratic

# --- TensorFlow "same" padding -------------------------------------------------------------


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF's ``same`` for a convolution or pooling window:
    output ``ceil(size / stride)``, the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_same_transpose_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Input padding DeepOBS puts before a transposed convolution run with padding
    ``kernel − 1``, so that the output side is ``size·stride`` (TF's ``same``)."""
    total = max((size - 1) * stride + kernel - size * stride, 0)
    return total // 2, total - total // 2


def _pad4(side: int, kernel: int, stride: int, transpose: bool = False) -> tuple[int, ...]:
    before, after = (tf_same_transpose_pad if transpose else tf_same_pad)(side, kernel, stride)
    return (before, after, before, after)


def _truncated_normal_(tensor: torch.Tensor, std: float) -> None:
    """TF's truncated normal (±2σ), as DeepOBS's ``_truncated_normal_init`` draws it (there
    from scipy with a NumPy state seeded from torch; here from torch directly: the same
    distribution, other draws)."""
    nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def _options(model: Mapping[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
    options = {k: v for k, v in dict(model or {}).items() if k != "arch"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"unknown {(model or {}).get('arch')} option(s): {sorted(unknown)} "
            f"(known: {sorted(allowed) or 'none'})"
        )
    return options


def _check_image(meta: Mapping[str, Any], arch: str) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in meta["image_shape"])
    if shape != (1, 28, 28):
        raise ValueError(
            f"{arch} is DeepOBS's (Fashion-)MNIST network and needs 1×28×28 images; the "
            f"dataset has {shape}: pick fashion_mnist or mnist as the task's dataset"
        )
    return shape  # type: ignore[return-value]


# --- fmnist_2c2d ---------------------------------------------------------------------------


class DeepObs2c2d(nn.Module):
    """DeepOBS's ``net_mnist_2c2d``; returns logits."""

    def __init__(self, num_classes: int = 10, side: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.pad1 = _pad4(side, 5, 1)
        pooled = math.ceil(side / 2)
        self.pad2 = _pad4(pooled, 5, 1)
        self.pool1 = _pad4(side, 2, 2)
        self.pool2 = _pad4(pooled, 2, 2)
        final = math.ceil(pooled / 2)
        self.dense1 = nn.Linear(64 * final * final, 1024)
        self.dense2 = nn.Linear(1024, num_classes)
        with torch.no_grad():
            for layer in (self.conv1, self.conv2, self.dense1, self.dense2):
                _truncated_normal_(layer.weight, 0.05)
                nn.init.constant_(layer.bias, 0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(F.pad(x, self.pad1)))
        x = F.max_pool2d(F.pad(x, self.pool1), 2, 2)
        x = F.relu(self.conv2(F.pad(x, self.pad2)))
        x = F.max_pool2d(F.pad(x, self.pool2), 2, 2)
        return self.dense2(F.relu(self.dense1(torch.flatten(x, 1))))


# --- fmnist_mlp ----------------------------------------------------------------------------


class DeepObsMLP(nn.Module):
    """DeepOBS's ``net_mlp``: 784 → 1000 → 500 → 100 → classes, ReLU; returns logits."""

    sizes: tuple[int, ...] = (1000, 500, 100)

    def __init__(self, in_features: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        widths = (in_features, *self.sizes, num_classes)
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False)
        )
        with torch.no_grad():
            for layer in self.layers:
                _truncated_normal_(layer.weight, 0.03)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


# --- fmnist_vae ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeepObsVaeSpec:
    """What the ``vae`` kind reads from a VAE's ``spec``: the latent size and the
    reconstruction term (DeepOBS: squared error of the sigmoid image)."""

    latent: int = 8
    dropout: float = 0.2
    likelihood: str = "squared_error"


class DeepObsVAE(nn.Module):
    """DeepOBS's ``net_vae`` (n_latent 8). ``forward(x, noise)`` returns the decoder's
    pre-sigmoid output, μ and log σ², as :class:`~amsgrad_repro.train.models.vae.ConvVAE`
    does, so the ``vae`` kind and its image grid run it unchanged."""

    def __init__(self, spec: DeepObsVaeSpec | None = None) -> None:
        super().__init__()
        spec = spec or DeepObsVaeSpec()
        self.spec = spec
        c, k = 64, 4
        self.conv1 = nn.Conv2d(1, c, k, stride=2)
        self.conv2 = nn.Conv2d(c, c, k, stride=2)
        self.conv3 = nn.Conv2d(c, c, k, stride=1)
        self.enc_pads = (_pad4(28, k, 2), _pad4(14, k, 2), _pad4(7, k, 1))
        self.dense_mu = nn.Linear(7 * 7 * c, spec.latent)
        self.dense_logvar = nn.Linear(7 * 7 * c, spec.latent)
        self.dense3 = nn.Linear(spec.latent, 24)
        self.dense4 = nn.Linear(24, 49)
        self.deconv1 = nn.ConvTranspose2d(1, c, k, stride=2, padding=k - 1)
        self.deconv2 = nn.ConvTranspose2d(c, c, k, stride=1, padding=k - 1)
        self.deconv3 = nn.ConvTranspose2d(c, c, k, stride=1, padding=k - 1)
        self.dec_pads = (
            _pad4(7, k, 2, transpose=True),
            _pad4(14, k, 1, transpose=True),
            _pad4(14, k, 1, transpose=True),
        )
        self.dense5 = nn.Linear(14 * 14 * c, 28 * 28)
        self.dropout = nn.Dropout(spec.dropout)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                    nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for conv, pad in zip((self.conv1, self.conv2, self.conv3), self.enc_pads, strict=True):
            x = self.dropout(F.leaky_relu(conv(F.pad(x, pad)), 0.3))
        x = torch.flatten(x, 1)
        # DeepOBS: log σ = 0.5·dense2(x), so dense2(x) is log σ².
        return self.dense_mu(x), self.dense_logvar(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.dense3(z), 0.3)
        x = F.leaky_relu(self.dense4(x), 0.3).view(-1, 1, 7, 7)
        for deconv, pad in zip(
            (self.deconv1, self.deconv2, self.deconv3), self.dec_pads, strict=True
        ):
            x = self.dropout(F.relu(deconv(F.pad(x, pad))))
        return self.dense5(torch.flatten(x, 1)).view(-1, 1, 28, 28)

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar


# --- quadratic_deep ------------------------------------------------------------------------

QUADRATIC_DIM = 100
QUADRATIC_POINTS = 1000
QUADRATIC_NOISE = 0.6


def random_rotation(dim: int, rng: np.random.RandomState) -> np.ndarray:
    """A Haar-random rotation by the subgroup algorithm (Diaconis & Shahshahani 1987),
    drawing from ``rng`` in the order DeepOBS's ``random_rotation`` does: one uniform
    angle for SO(2), then per dimension d = 2 … dim−1 a normal vector of length d+1,
    reflected onto the first axis (a Householder step), and the sign flipped at the end."""
    if dim < 2:
        raise ValueError(f"a rotation needs at least 2 dimensions, got {dim}")
    angle = 2.0 * np.pi * rng.uniform()
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    for d in range(2, dim):
        v = rng.normal(size=(d + 1, 1))
        v = v / np.sqrt((v * v).sum())
        e = np.zeros((d + 1, 1))
        e[0, 0] = 1.0
        u = (e - v) / np.sqrt(((e - v) ** 2).sum())
        block = np.zeros((d + 1, d + 1))
        block[0, 0] = 1.0
        block[1:, 1:] = rot
        rot = block - 2.0 * u @ (u.T @ block)
    return -rot


def quadratic_hessian(seed: int = 42, dim: int = QUADRATIC_DIM) -> np.ndarray:
    """DeepOBS's Hessian: 90 % of the eigenvalues U(0, 1), 10 % U(30, 60), rotated; all
    from one ``RandomState(seed)`` (DeepOBS's module-level state on the first set-up in a
    process)."""
    rng = np.random.RandomState(seed)
    small = dim * 9 // 10
    eigenvalues = np.concatenate(
        (rng.uniform(0.0, 1.0, small), rng.uniform(30.0, 60.0, dim - small))
    )
    rot = random_rotation(dim, rng)
    return rot.T @ np.diag(eigenvalues) @ rot


def quadratic_points(
    split: str,
    dim: int = QUADRATIC_DIM,
    points: int = QUADRATIC_POINTS,
    noise: float = QUADRATIC_NOISE,
) -> np.ndarray:
    """The x of DeepOBS's quadratic data set, float32 [points, dim]: seed 42 for
    ``train`` (also its train-eval set), 43 for ``test`` (the data stage's generator,
    ``data.generated.deepobs_quadratic``)."""
    if split not in ("train", "test"):
        raise ValueError(f"quadratic split must be train or test, got {split!r}")
    return getattr(deepobs_quadratic(dim, points, noise), f"{split}_x")


class QuadraticDeep(nn.Module):
    """θ (from ones) and a fixed Hessian; ``forward(x)`` is ½(θ − x)ᵀQ(θ − x) averaged over
    the batch, the loss itself (DeepOBS's ``net_quadratic_deep``)."""

    def __init__(self, hessian: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        hessian = torch.as_tensor(np.asarray(hessian), dtype=torch.float32)
        self.theta = nn.Parameter(torch.ones(hessian.shape[0]))
        self.register_buffer("hessian", hessian)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.theta - x
        return 0.5 * ((q @ self.hessian) * q).sum(1).mean()


# --- builders ------------------------------------------------------------------------------


def build_fmnist_2c2d(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    _options(model, set())
    _check_image(meta, "fmnist_2c2d")
    return DeepObs2c2d(int(meta.get("num_classes") or 10))


def build_fmnist_mlp(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    _options(model, set())
    shape: Sequence[int] = meta["image_shape"]
    return DeepObsMLP(math.prod(shape), int(meta.get("num_classes") or 10))


def build_fmnist_vae(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    options = _options(model, {"latent", "dropout"})
    _check_image(meta, "fmnist_vae")
    return DeepObsVAE(DeepObsVaeSpec(**options))


def build_quadratic_deep(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    options = _options(model, {"hessian_seed"})
    return QuadraticDeep(quadratic_hessian(int(options.get("hessian_seed", 42))))


__all__ = [
    "DeepObs2c2d",
    "DeepObsMLP",
    "DeepObsVAE",
    "DeepObsVaeSpec",
    "QuadraticDeep",
    "quadratic_hessian",
    "quadratic_points",
    "random_rotation",
    "tf_same_pad",
    "tf_same_transpose_pad",
]
