"""Gradient-norm clipping (``train.clipping``): a stacked member's gradient is clipped by
its own norm exactly as ``torch.nn.utils.clip_grad_norm_`` clips a lone model's, and a
mistyped setting is refused naming the key."""

from __future__ import annotations

import math

import pytest
import torch

from amsgrad_repro.train.clipping import clip_member_grads_, clip_norm, clipper


def stacked_grads(scales: list[float], generator: torch.Generator) -> list[torch.Tensor]:
    """Two stacked parameters [members, ...] whose members' gradient norms differ by the
    given scales (some members below the clip, some above)."""
    shapes = [(len(scales), 3, 4), (len(scales), 5)]
    params = []
    for shape in shapes:
        param = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        grad = torch.randn(shape, dtype=torch.float64, generator=generator)
        param.grad = grad * torch.tensor(scales, dtype=torch.float64).view(
            -1, *[1] * (len(shape) - 1)
        )
        params.append(param)
    return params


def test_each_member_is_clipped_by_its_own_norm_as_torch_clips_a_model():
    generator = torch.Generator().manual_seed(0)
    scales = [0.01, 1.0, 10.0]
    params = stacked_grads(scales, generator)
    expected = []
    for m in range(len(scales)):
        alone = [p.grad[m].clone() for p in params]
        norm = torch.nn.utils.clip_grad_norm_(
            [torch.zeros_like(g).requires_grad_() for g in alone], 1.0
        )  # a no-op on zero grads: sanity that the API is what we call
        assert norm == 0
        holders = []
        for g in alone:
            holder = torch.zeros_like(g, requires_grad=True)
            holder.grad = g
            holders.append(holder)
        torch.nn.utils.clip_grad_norm_(holders, 0.5)
        expected.append([h.grad for h in holders])
    before = [p.grad.clone() for p in params]
    clip_member_grads_(params, 0.5)
    for m in range(len(scales)):
        for k, param in enumerate(params):
            # float64: a norm of 17 squares in another order (PyTorch takes the norm of the
            # per-tensor norms) and one product: a few u = 1.1e-16 of each entry.
            torch.testing.assert_close(param.grad[m], expected[m][k], rtol=1e-14, atol=0)
    # The small member is untouched; the others end at norm 0.5 (up to the 1e-6 guard).
    assert all(torch.equal(p.grad[0], b[0]) for p, b in zip(params, before, strict=True))
    for m in (1, 2):
        norm = math.sqrt(sum(float(p.grad[m].pow(2).sum()) for p in params))
        assert norm == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize(
    "value, message",
    [
        ("1.0", "expected a positive number or null"),
        (True, "expected a positive number or null"),
        (0, "must be a finite number > 0"),
        (-1.0, "must be a finite number > 0"),
        (math.inf, "must be a finite number > 0"),
    ],
)
def test_a_mistyped_clip_norm_is_refused_naming_the_key(value, message):
    with pytest.raises(ValueError, match=f"grad_clip_norm: {message}"):
        clip_norm({"grad_clip_norm": value})


def test_no_setting_means_no_clipping():
    assert clip_norm({}) is None and clip_norm({"grad_clip_norm": None}) is None
    assert clipper({}, [], stacked=True) is None


def test_a_training_run_clips_and_records_it(tmp_path):
    """The single-run trainer calls the clip between backward and step (the stacked test
    compares members with these runs, so a clip missing from both would pass there)."""
    import json

    import pandas as pd

    from amsgrad_repro.train.engine import train
    from tests.test_train import request, write_miniature

    cache = write_miniature(tmp_path / "miniature")
    curves = {}
    for clip in (None, 0.05):
        root = tmp_path / f"clip{clip}"
        record = train(request(cache, root, "adamw-amsgrad", grad_clip_norm=clip, epochs=1))
        assert record["settings"]["grad_clip_norm"] == clip
        assert json.loads((root / "run" / "run.json").read_text())["settings"] == record["settings"]
        curves[clip] = pd.read_csv(root / "run" / "metrics.csv")["train_loss"]
    assert (curves[None] - curves[0.05]).abs().max() > 1e-3
