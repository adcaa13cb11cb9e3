"""The deep models of issue 19 against their references: DeepOBS's fmnist_2c2d, fmnist_mlp,
fmnist_vae and quadratic_deep (fsschneider/DeepOBS, deepobs/pytorch/testproblems/) and
He et al.'s ResNet-20. Parameter counts are the references' (DeepOBS's docstrings and
the sums of its layer sizes; the ResNet paper's option A and B shortcuts), layer shapes
are the ones DeepOBS's code produces, and the crop augmentation and the quadratic's data
are seeded and reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from amsgrad_repro.train.kinds.vae import KIND as VAE_KIND
from amsgrad_repro.train.models import MODELS, build_model
from amsgrad_repro.train.models.cifarnet import augment
from amsgrad_repro.train.models.deepobs import (
    DeepObs2c2d,
    DeepObsVAE,
    QuadraticDeep,
    quadratic_hessian,
    quadratic_points,
    random_rotation,
    tf_same_pad,
    tf_same_transpose_pad,
)
from amsgrad_repro.train.models.resnet import ResNet, expected_parameters
from amsgrad_repro.train.models.vae import negative_elbo

FMNIST = {"image_shape": [1, 28, 28], "num_classes": 10}
CIFAR = {"image_shape": [3, 32, 32], "num_classes": 10}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("arch", "meta", "options", "params"),
    [
        # DeepOBS's docstring and 5·5·32+32 + 5·5·32·64+64 + 3136·1024+1024 + 1024·10+10.
        ("fmnist_2c2d", FMNIST, {}, 3_274_634),
        # 785·1000 + 1001·500 + 501·100 + 101·10.
        ("fmnist_mlp", FMNIST, {}, 1_336_610),
        # convs 1088 + 65600 + 65600, dense 2·25096, 216, 1225, deconvs 1088 + 2·65600,
        # dense 12544·784 + 784.
        ("fmnist_vae", FMNIST, {}, 10_151_489),
        ("quadratic_deep", FMNIST, {}, 100),
        ("resnet20", CIFAR, {}, 269_722),
        ("resnet20", CIFAR, {"shortcut": "B"}, 272_474),
        ("resnet20", FMNIST, {}, 269_434),
        ("resnet20", FMNIST, {"shortcut": "B"}, 272_186),
    ],
)
def test_parameter_counts(arch: str, meta: dict, options: dict, params: int) -> None:
    torch.manual_seed(0)
    assert arch in MODELS
    assert count(build_model({"arch": arch, **options}, meta)) == params


@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_closed_form(channels: int, shortcut: str) -> None:
    model = ResNet(channels, 10, 3, shortcut)
    assert count(model) == expected_parameters(channels, shortcut)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # 1 stem + 18 block convs (+ 2 projections for B); ResNet-20 = 19 weighted 3×3 + FC.
    assert len(convs) == 19 + (2 if shortcut == "B" else 0)
    assert all(conv.bias is None for conv in convs)


def test_resnet_shapes_per_stage() -> None:
    model = ResNet(1, 10).eval()
    shapes = []
    hooks = [b.register_forward_hook(lambda m, i, o: shapes.append(o.shape)) for b in model.blocks]
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    for hook in hooks:
        hook.remove()
    assert [tuple(s[1:]) for s in shapes] == [(16, 28, 28)] * 3 + [(32, 14, 14)] * 3 + [
        (64, 7, 7)
    ] * 3


def test_resnet_option_a_shortcut_is_subsample_and_zero_channels() -> None:
    block = ResNet(3, 10).blocks[3]  # first block of stage 2: 16 → 32, stride 2
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2], rtol=0, atol=0)
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_tf_same_padding_arithmetic() -> None:
    # TF 'same': output ceil(n/s); the odd pixel goes after.
    assert tf_same_pad(28, 5, 1) == (2, 2)
    assert tf_same_pad(28, 2, 2) == (0, 0)
    assert tf_same_pad(28, 4, 2) == (1, 1)
    assert tf_same_pad(7, 4, 1) == (1, 2)
    assert tf_same_transpose_pad(7, 4, 2) == (1, 1)
    assert tf_same_transpose_pad(14, 4, 1) == (1, 2)


def test_2c2d_layer_shapes_and_init() -> None:
    torch.manual_seed(0)
    model = DeepObs2c2d()
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert model.conv1.weight.shape == (32, 1, 5, 5)
    assert model.conv2.weight.shape == (64, 32, 5, 5)
    assert model.dense1.weight.shape == (1024, 3136)
    for layer in (model.conv1, model.conv2, model.dense1, model.dense2):
        assert torch.all(layer.bias == 0.05)
        assert layer.weight.abs().max() <= 2 * 0.05  # truncated at ±2σ
    # 'same' convolution of 5×5 at stride 1 is symmetric padding 2: PyTorch's padding=2.
    reference = F.relu(F.conv2d(x, model.conv1.weight, model.conv1.bias, padding=2))
    torch.testing.assert_close(F.relu(model.conv1(F.pad(x, model.pad1))), reference)


def test_mlp_layers_and_init() -> None:
    torch.manual_seed(0)
    model = build_model({"arch": "fmnist_mlp"}, FMNIST)
    assert [tuple(layer.weight.shape) for layer in model.layers] == [
        (1000, 784),
        (500, 1000),
        (100, 500),
        (10, 100),
    ]
    assert all(torch.all(layer.bias == 0) for layer in model.layers)
    assert max(layer.weight.abs().max() for layer in model.layers) <= 2 * 0.03
    # truncated normal σ 0.03 has std 0.03·0.8796 (the ±2σ truncation factor)
    std = model.layers[0].weight.std().item()
    assert abs(std - 0.03 * 0.8796) < 0.001


def test_vae_shapes_and_deepobs_loss() -> None:
    torch.manual_seed(0)
    model = DeepObsVAE().eval()
    shapes: list[tuple[int, ...]] = []
    x = torch.rand(4, 1, 28, 28)
    z = x
    for conv, pad in zip((model.conv1, model.conv2, model.conv3), model.enc_pads, strict=True):
        z = conv(F.pad(z, pad))
        shapes.append(tuple(z.shape[1:]))
    assert shapes == [(64, 14, 14), (64, 7, 7), (64, 7, 7)]
    y = torch.randn(4, 1, 7, 7)
    for deconv, pad in zip(
        (model.deconv1, model.deconv2, model.deconv3), model.dec_pads, strict=True
    ):
        y = deconv(F.pad(y, pad))
        assert tuple(y.shape[1:]) == (64, 14, 14)
    noise = torch.randn(4, 8)
    logits, mu, logvar = model(x, noise)
    assert logits.shape == x.shape and mu.shape == logvar.shape == (4, 8)
    # DeepOBS's vae_loss_function with std_dev = log σ = logvar / 2, in float64.
    out, target = torch.sigmoid(logits.double()), x.double()
    std_dev = 0.5 * logvar.double()
    image = ((out - target) ** 2).flatten(1).sum(1).mean()
    latent = -0.5 * (1 + 2 * std_dev - mu.double() ** 2 - torch.exp(2 * std_dev)).sum(1).mean()
    terms = negative_elbo(logits.double(), target, mu.double(), logvar.double(), "squared_error")
    torch.testing.assert_close(terms.recon, image, rtol=1e-12, atol=0)
    torch.testing.assert_close(terms.loss, image + latent, rtol=1e-12, atol=0)
    # The vae kind picks the squared error from the model's spec.
    generator = torch.Generator().manual_seed(3)
    loss, extras = VAE_KIND.batch_loss(model, x, torch.zeros(4), generator)
    assert torch.isfinite(loss) and set(extras) == {"recon", "kl"}
    with pytest.raises(ValueError, match="likelihood"):
        negative_elbo(logits, x, mu, logvar, "gaussian")


@pytest.mark.parametrize("arch", ["fmnist_2c2d", "fmnist_mlp", "resnet20"])
def test_classifiers_learn_a_fixed_batch(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model({"arch": arch}, FMNIST)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert F.cross_entropy(model(x), y).item() < first
    assert all(p.grad is not None for p in model.parameters())


def test_crop_padding_seeded_and_resumable() -> None:
    batch = torch.rand(6, 1, 28, 28)
    gen = torch.Generator().manual_seed(7)
    first = augment(batch, "crop_flip", gen, 4)
    state = gen.get_state()
    second = augment(batch, "crop_flip", gen, 4)
    # A restored generator (what a resumed run loads from its checkpoint) draws the same.
    resumed = torch.Generator().manual_seed(999)
    resumed.set_state(state)
    torch.testing.assert_close(augment(batch, "crop_flip", resumed, 4), second, rtol=0, atol=0)
    again = augment(batch, "crop_flip", torch.Generator().manual_seed(7), 4)
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    assert first.shape == batch.shape
    # Each crop is a shifted (maybe flipped) window of the zero-padded image: every value
    # is a pixel of that image or a padding zero.
    values = set(batch.flatten().tolist()) | {0.0}
    assert set(first.flatten().tolist()) <= values
    # Padding 0 leaves only the flip.
    gen0 = torch.Generator().manual_seed(1)
    flipped = augment(batch, "crop_flip", gen0, 0)
    for image, out in zip(batch, flipped, strict=True):
        assert torch.equal(out, image) or torch.equal(out, image.flip(2))


def test_rotation_is_orthogonal() -> None:
    rot = random_rotation(100, np.random.RandomState(0))
    np.testing.assert_allclose(rot @ rot.T, np.eye(100), atol=1e-12)
    assert np.isclose(np.linalg.det(rot), 1.0)


def test_quadratic_deep_reproducible_and_spectrum() -> None:
    hessian = quadratic_hessian()
    np.testing.assert_array_equal(hessian, quadratic_hessian())
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)
    # Its spectrum is the eigenvalues drawn first from RandomState(42): 90 U(0,1), 10 U(30,60).
    rng = np.random.RandomState(42)
    drawn = np.sort(np.concatenate((rng.uniform(0, 1, 90), rng.uniform(30, 60, 10))))
    np.testing.assert_allclose(np.linalg.eigvalsh(hessian), drawn, atol=1e-10)
    train, test = quadratic_points("train"), quadratic_points("test")
    assert train.shape == test.shape == (1000, 100) and train.dtype == np.float32
    np.testing.assert_array_equal(
        train, np.float32(np.random.RandomState(42).normal(0, 0.6, (1000, 100)))
    )
    assert not np.array_equal(train, test)
    model = QuadraticDeep(hessian)
    assert torch.equal(model.theta.detach(), torch.ones(100))
    x = torch.from_numpy(train[:128])
    q = (model.theta.detach().double() - x.double()).numpy()
    expected = 0.5 * np.mean(np.einsum("bi,ij,bj->b", q, hessian, q))
    assert abs(model(x).item() - expected) <= 1e-5 * expected
    with pytest.raises(ValueError, match="train or test"):
        quadratic_points("val")


def test_builders_refuse_unknown_options_and_wrong_images() -> None:
    with pytest.raises(ValueError, match="unknown fmnist_2c2d option"):
        build_model({"arch": "fmnist_2c2d", "width": 3}, FMNIST)
    with pytest.raises(ValueError, match="1×28×28"):
        build_model({"arch": "fmnist_vae"}, CIFAR)
    with pytest.raises(ValueError, match="shortcut"):
        build_model({"arch": "resnet20", "shortcut": "C"}, CIFAR)
