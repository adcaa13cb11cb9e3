"""CIFARNET and the VAE: shapes, parameter counts, the documented layer choices, and that a
few optimizer steps on a fixed batch lower the loss (so gradients reach every layer)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn import functional as F

from amsgrad_repro.optimizers.torch_optimizer import build_named
from amsgrad_repro.train.models.cifarnet import (
    CifarNet,
    CifarNetSpec,
    PixelStandardizer,
    TFLocalResponseNorm,
    augment,
    count_parameters,
    expected_parameters,
)
from amsgrad_repro.train.models.vae import (
    ConvVAE,
    VaeSpec,
    image_grid,
    negative_elbo,
    save_reconstructions,
)
from amsgrad_repro.train.models.vae import count_parameters as vae_parameters
from amsgrad_repro.train.models.vae import expected_parameters as vae_expected


def test_cifarnet_shapes_and_parameter_count() -> None:
    torch.manual_seed(0)
    model = CifarNet()
    assert model(torch.randn(5, 3, 32, 32)).shape == (5, 10)
    # conv 3→64 6×6, conv 64→64 6×6, FC 8·8·64→384, FC 384→192, FC 192→10
    assert count_parameters(model) == 1_803_594 == expected_parameters()
    valid = CifarNetSpec(padding="valid")
    assert count_parameters(CifarNet(valid)) == 623_946 == expected_parameters(valid)
    assert CifarNet(valid)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def sum_bound(n: int, dtype: torch.dtype) -> float:
    """γ_n = n·u/(1 − n·u): a sum of n products rounded in any order (FMA or not, any
    kernel) is within γ_n·Σ|terms| of the exact one, so two such sums are within 2·γ_n."""
    u = torch.finfo(dtype).eps / 2
    return 2 * n * u / (1 - n * u)


def test_cifarnet_same_padding_matches_pytorch_same_mode() -> None:
    torch.manual_seed(0)
    model = CifarNet()
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(UserWarning):  # torch warns once per process: even kernel, 'same'
        reference = F.conv2d(x, model.conv1.weight, model.conv1.bias, padding="same")
    got = model._conv(model.conv1, x)
    torch.testing.assert_close(got, reference)
    # Each output: 3·6·6 = 108 products and the bias, so the a-priori error of two orders of
    # summation bounds the difference: |got − ref| ≤ 2·γ_109·(|w| ∗ |x| + |b|), ~1e-13
    # in float64, where the identity is tested too. torch's float32 defaults above (rtol
    # 1.3e-6, atol 1e-5) are tighter than that bound (up to 6e-5 here) and hold because both run
    # the same kernel on the same padded input (measured bit-identical in both dtypes).
    for dtype in (torch.float32, torch.float64):
        conv = model.to(dtype).conv1
        xd = x.to(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            reference = F.conv2d(xd, conv.weight, conv.bias, padding="same")
            scale = F.conv2d(xd.abs(), conv.weight.abs(), conv.bias.abs(), padding="same")
        error = (model._conv(conv, xd) - reference).abs()
        assert (error <= sum_bound(109, dtype) * scale).all(), dtype


# LRN by hand and by the module: ≤ 9 squares summed, scaled, biased (≥ 1: no cancellation),
# raised to β ≤ 1 and divided: ≤ 14 roundings of relative ≤ u each way, 28·u apart at most
# (1.7e-6 in float32, torch's default rtol 1.3e-6 needing an atol of 1e-5; 3.1e-15 in
# float64). rtol = 32·u; measured 0.6·eps32.
LRN_RTOL = {torch.float32: 32 * 2**-24, torch.float64: 32 * 2**-53}


@pytest.mark.parametrize("dtype", sorted(LRN_RTOL, key=str))
def test_lrn_uses_tensorflow_parameterisation(dtype) -> None:
    """x / (bias + alpha · Σ_{|c'−c| ≤ r} x_{c'}²)^beta, computed by hand."""
    torch.manual_seed(0)
    x = torch.randn(2, 12, 3, 3, dtype=dtype)
    radius, bias, alpha, beta = 4, 1.0, 0.001 / 9, 0.75
    squares = x * x
    expected = torch.empty_like(x)
    for c in range(12):
        window = squares[:, max(0, c - radius) : c + radius + 1].sum(1)
        expected[:, c] = x[:, c] / (bias + alpha * window) ** beta
    got = TFLocalResponseNorm(12, radius, bias, alpha, beta).to(dtype)(x)
    rtol = LRN_RTOL[dtype]
    torch.testing.assert_close(got, expected, rtol=rtol, atol=0)
    size = 2 * radius + 1  # PyTorch's own LRN, with alpha rescaled, agrees too (an average
    # of the 9 squares times α·9: two more roundings, inside the 4 of margin)
    torch.testing.assert_close(
        got, F.local_response_norm(x, size, alpha * size, beta, bias), rtol=rtol, atol=0
    )


def test_tf_tutorial_init_is_truncated_and_biased() -> None:
    torch.manual_seed(0)
    model = CifarNet()
    # trunc_normal_ clamps to ±2σ, the float32 of 2σ exactly (the former + 1e-7 was 13 ulps)
    assert model.conv1.weight.abs().max() <= torch.tensor(2 * 0.05)
    assert model.fc1.weight.abs().max() <= torch.tensor(2 * 0.04)
    assert torch.all(model.conv2.bias == 0.1) and torch.all(model.conv1.bias == 0.0)
    default = CifarNet(CifarNetSpec(init="torch_default"))
    assert not torch.all(default.conv2.bias == 0.1)


def test_cifarnet_spec_rejects_unknown_options() -> None:
    with pytest.raises(ValueError, match="unknown CIFARNET option"):
        CifarNetSpec.from_settings({"arch": "cifarnet", "paddding": "same"})
    with pytest.raises(ValueError, match="padding"):
        CifarNetSpec.from_settings({"padding": "full"})
    spec = CifarNetSpec.from_settings({"arch": "cifarnet", "fc_sizes": [32, 16]})
    assert spec.fc_sizes == (32, 16)


def test_pixel_standardizer_uses_per_pixel_statistics() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 4, 4), generator=generator, dtype=torch.uint8)
    images[:, 0, 0, 0] = 7  # a constant pixel must not divide by zero
    standardize = PixelStandardizer(images, chunk=64)
    out = standardize(images)
    assert torch.isfinite(out).all()
    mean = out.mean(0)
    std = out.std(0, unbiased=False)
    # The statistics are exact in float64 and rounded once to float32; x/255 − mean and the
    # division round too: ≤ (1 + 0.5)/σ·2u + u·|out| ≈ 8e-7 per element for σ ≈ 0.29 (the
    # constant pixel: an ulp of 7/255 over the floor 1e-3, 1.9e-6); the float32 mean and std
    # over 300 add ≤ log2(300)·u·max|out| ≈ 9e-7. ≤ 3e-6 in all; 1e-5 (measured 1.3e-7).
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    assert torch.allclose(std.flatten()[1:], torch.ones(47), rtol=0, atol=1e-5)


def test_augment_flip_and_crop_are_seeded_batched_ops() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    assert augment(x, "none", torch.Generator()) is x
    flipped = augment(x, "flip", torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))
    a = augment(x, "crop_flip", torch.Generator().manual_seed(3))
    b = augment(x, "crop_flip", torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    # every crop is a shifted window of the zero-padded (maybe flipped) image
    padded = F.pad(torch.cat([x, x.flip(3)]), (4, 4, 4, 4))
    for i in range(2):
        windows = padded.unfold(2, 8, 1).unfold(3, 8, 1)  # [N, C, 9, 9, 8, 8]
        hits = (windows == a[i][None, :, None, None]).all(-1).all(-1).all(1)
        assert hits.any()
    with pytest.raises(ValueError):
        augment(x, "rotate", torch.Generator())


def _fit(model: torch.nn.Module, loss_fn, steps: int, optimizer: str, hparams: dict) -> list:
    opt, _ = build_named(optimizer, model.parameters(), hparams)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_cifarnet_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = CifarNet()
    model.eval()  # no dropout, so the decrease is attributable to the steps
    x = torch.randn(32, 3, 32, 32)
    y = torch.randint(0, 10, (32,))
    hparams = {"lr": 1e-4, "beta1": 0.9, "beta2": 0.999}
    losses = _fit(model, lambda: F.cross_entropy(model(x), y), 15, "amsgrad", hparams)
    assert losses[-1] < 0.5 * losses[0], losses


def test_vae_celeba_shapes_and_parameter_count() -> None:
    spec = VaeSpec.celeba()
    model = ConvVAE(spec)
    assert vae_parameters(model) == 8_745_931 == vae_expected(spec)
    x = torch.rand(2, 3, 64, 64)
    logits, mu, logvar = model(x, torch.randn(2, 100))
    assert logits.shape == x.shape and mu.shape == logvar.shape == (2, 100)
    assert model.encoder(x).shape == (2, 1024)  # 64 → 8 → 1 after two max-pools of 8


def test_vae_mnist_shapes_and_parameter_count() -> None:
    spec = VaeSpec.from_settings({"arch": "vae"}, (1, 28, 28))
    assert spec == VaeSpec.mnist()
    model = ConvVAE(spec)
    assert vae_parameters(model) == 1_796_777 == vae_expected(spec)
    logits, mu, _ = model(torch.rand(3, 1, 28, 28), torch.randn(3, 20))
    assert logits.shape == (3, 1, 28, 28) and mu.shape == (3, 20)
    assert VaeSpec.from_settings({"size": "auto"}, (3, 64, 64)) == VaeSpec.celeba()
    with pytest.raises(ValueError, match="unknown VAE option"):
        VaeSpec.from_settings({"latnet": 3}, (1, 28, 28))


def test_negative_elbo_is_recon_plus_kl() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 1, 6, 6)
    target = torch.rand(4, 1, 6, 6)
    mu, logvar = torch.zeros(4, 5), torch.zeros(4, 5)
    terms = negative_elbo(logits, target, mu, logvar)
    assert float(terms.kl) == 0.0  # q = prior
    by_hand = -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)).sum() / 4
    # 144 positive terms of a few roundings each, summed in any order: within 2·γ_150 of each
    # other (1.8e-5 in float32, 3.3e-14 in float64); torch's float32 default (rtol 1.3e-6)
    # is tighter and holds: the same reduction (measured bit-identical in both dtypes).
    torch.testing.assert_close(terms.recon, by_hand)
    for dtype in (torch.float32, torch.float64):
        args = (logits.to(dtype), target.to(dtype), mu.to(dtype), logvar.to(dtype))
        recon = negative_elbo(*args).recon
        lo, ta = args[0], args[1]
        hand = -(ta * F.logsigmoid(lo) + (1 - ta) * F.logsigmoid(-lo)).sum() / 4
        assert recon.dtype == dtype
        torch.testing.assert_close(recon, hand, rtol=sum_bound(150, dtype), atol=0)
    mu = torch.ones(4, 5)
    # 0.5·Σ(μ² + e^0 − 1 − 0)/4 over 20 ones: every operation exact
    assert float(negative_elbo(logits, target, mu, logvar).kl) == 2.5


@pytest.mark.parametrize("size", ["mnist", "celeba"])
def test_vae_few_steps_lower_the_loss(size: str) -> None:
    torch.manual_seed(0)
    shape = (1, 28, 28) if size == "mnist" else (3, 64, 64)
    spec = VaeSpec.from_settings({"size": size}, shape)
    model = ConvVAE(spec)
    x = (torch.rand(8, *shape) > 0.5).float()
    noise = torch.randn(8, spec.latent)

    def loss() -> torch.Tensor:
        logits, mu, logvar = model(x, noise)
        return negative_elbo(logits, x, mu, logvar).loss

    # The report's VAE settings with the bias correction the VAE tasks switch on (config.yaml)
    hparams = {"lr": 2e-3, "lr_schedule": "inv_sqrt", "beta1": 0.5, "beta2": 0.999}
    losses = _fit(model, loss, 8, "amsgrad", {**hparams, "bias_correction": True})
    assert losses[-1] < 0.9 * losses[0], losses


def test_image_grid_png(tmp_path) -> None:
    from PIL import Image

    torch.manual_seed(0)
    model = ConvVAE(VaeSpec.mnist()).train()
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    grid = image_grid(model, images, 16, torch.Generator().manual_seed(0))
    # 8 originals + 8 reconstructions + 16 samples, 8 per row: 4 rows of 30-pixel tiles
    assert grid.dtype == torch.uint8 and grid.shape == (3, 4 * 30 + 2, 8 * 30 + 2)
    assert model.training  # mode restored
    path = tmp_path / "grid.png"
    save_reconstructions(model, images, path, seed=0)
    with Image.open(path) as image:
        assert image.size == (8 * 30 + 2, 4 * 30 + 2)
