"""The batch-source seam of the training engine and the character-level language model:
the image path through the seam equals a plain loop bit for bit."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from amsgrad_repro.data import load_cache
from amsgrad_repro.data.cache import TEXT_KIND, CacheWriter
from amsgrad_repro.optimizers.torch_optimizer import build_named
from amsgrad_repro.train.engine import KILL_AFTER_EPOCH_ENV, RunRequest, Trainer
from amsgrad_repro.train.kinds.lm import SAMPLE_LENGTH, samples_page
from amsgrad_repro.train.models import build_model
from amsgrad_repro.train.models.gpt import Gpt, GptSpec, continue_text
from amsgrad_repro.train.spikes import SpikeRule
from amsgrad_repro.train.text_samples import format_page, parse_page
from tests.test_train import request, train, write_miniature


def plain_image_loop(cache: Path, seed: int, settings: dict) -> tuple[list[float], float]:
    """The image loop written out by hand, as the engine ran it before the batch source
    existed: seed, model, a CPU generator's permutation per epoch, gathers by index, x/255,
    cross-entropy, torch's Adam. Returns every step's loss and the final test loss (batch
    means weighted by batch size)."""
    data = load_cache(cache)
    torch.manual_seed(seed)
    model = build_model(settings["model"], data.meta)
    optimizer, _ = build_named("torch-adam", model.parameters(), settings["hparams"])
    order_gen = torch.Generator().manual_seed(seed * 1000 + 1)
    keep = torch.ones(data.train_x.shape[0], dtype=torch.bool)
    keep[data.val_index] = False
    train_index = torch.arange(data.train_x.shape[0])[keep]
    batch, losses = settings["batch_size"], []
    for _ in range(settings["epochs"]):
        order = train_index[torch.randperm(train_index.numel(), generator=order_gen)]
        for start in range(0, order.numel(), batch):
            index = order[start : start + batch]
            x = data.train_x.index_select(0, index).float().div_(255.0)
            loss = F.cross_entropy(model(x), data.train_y.index_select(0, index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    with torch.no_grad():
        model.eval()
        total, size = 0.0, data.test_x.shape[0]
        for start in range(0, size, settings["eval_batch_size"]):
            x = data.test_x[start : start + settings["eval_batch_size"]].float().div_(255.0)
            y = data.test_y[start : start + settings["eval_batch_size"]]
            total = total + F.cross_entropy(model(x), y) * x.shape[0]
    return losses, float(total / size)


def test_image_batches_through_the_seam_equal_the_plain_loop_bit_for_bit(tmp_path):
    """ImageBatches (batches.BatchSource) draws, transforms and evaluates exactly as the
    loop did: every step's loss (log_every 1: a row's train_loss is that one batch's loss,
    times 32 over 32, exact) and the final test loss are equal as floats."""
    cache = write_miniature(tmp_path / "data" / "miniature")
    changes = {"log_every": 1, "eval_every": 0, "epochs": 2, "model": {"arch": "mlp"}}
    run = request(cache, tmp_path, optimizer="torch-adam", seed=5, **changes)
    train(run)
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    losses, test_loss = plain_image_loop(cache, 5, dict(run.settings))
    assert len(losses) == 20 and table["step"].tolist() == list(range(1, 21))
    assert table["train_loss"].tolist() == losses
    assert table["test_loss"].iloc[-1] == test_loss


# --- the language model -------------------------------------------------------------------

VERSE = (
    b"To be, or not to be, that is the question:\n"
    b"Whether 'tis nobler in the mind to suffer\n"
    b"The slings and arrows of outrageous fortune,\n"
)


def write_text_cache(folder: Path, repeats: int = 40) -> Path:
    """A token cache in the data stage's format: a repeated verse as the training play,
    its lines shuffled as the validation and test plays (same vocabulary)."""
    lines = VERSE.split(b"\n")
    texts = {
        "train": VERSE * repeats,
        "val": b"\n".join(lines[::-1]) * 4,
        "test": b"\n".join(lines[1:] + lines[:1]) * 4,
    }
    vocab = np.array(sorted(set(VERSE)), dtype=np.uint8)
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[vocab] = np.arange(len(vocab), dtype=np.uint8)
    writer = CacheWriter(folder)
    writer.array("vocab", vocab)
    for split, text in texts.items():
        writer.array(f"{split}_tokens", lookup[np.frombuffer(text, dtype=np.uint8)])
    for split in texts:
        writer.array(f"{split}_starts", np.zeros(1, dtype=np.int64))
    writer.commit(
        {
            "name": "verse",
            "format": "text",
            "kind": TEXT_KIND,
            "sha256": "0" * 64,
            "vocab_size": len(vocab),
            **{f"num_{split}": len(text) for split, text in texts.items()},
        }
    )
    return folder / "meta.json"


def lm_settings(**changes: Any) -> dict[str, Any]:
    settings = {
        "kind": "lm",
        "dataset": "verse",
        "model": {"arch": "gpt", "layers": 1, "heads": 2, "dim": 16, "context": 16},
        "optimizers": ["adamw", "adamw-amsgrad", "adopt"],
        "hparams": {"lr": 0.01, "lr_schedule": "warmup_cosine", "weight_decay": 0.1},
        "grad_clip_norm": 1.0,
        "batch_size": 8,
        "epochs": 3,
        "epoch_steps": 5,
        "eval_windows": 12,
        "log_every": 5,
        # A spike whenever a batch's loss rises above the one before: several per run, so
        # the resume test sees the per-step losses survive a kill.
        "spike_rule": {"factor": 1.0001, "window": 1},
    }
    settings.update(changes)
    return settings


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory) -> Path:
    return write_text_cache(tmp_path_factory.mktemp("text") / "verse")


def lm_request(cache: Path, root: Path, optimizer="adamw-amsgrad", seed=0, **changes):
    return RunRequest(
        task="charlm",
        optimizer=optimizer,
        seed=seed,
        settings=lm_settings(**changes),
        dataset_cache=cache,
        out_dir=root / "run",
        checkpoint_dir=root / "ckpt",
        device="cpu",
    )


def test_windows_are_seeded_and_the_same_for_every_optimizer(text_cache, tmp_path):
    trainers = {
        (opt, seed): Trainer(lm_request(text_cache, tmp_path / f"{opt}{seed}", opt, seed))
        for opt, seed in (("adamw", 0), ("adamw-amsgrad", 0), ("adopt", 0), ("adamw", 1))
    }

    def windows(trainer: Trainer) -> list[torch.Tensor]:
        gen = trainer.order_gen.clone_state()
        return [x for x, _ in trainer.source.epoch(3, gen, trainer.kind_gen)]

    first = windows(trainers["adamw", 0])
    for key in (("adamw-amsgrad", 0), ("adopt", 0)):
        assert all(torch.equal(a, b) for a, b in zip(first, windows(trainers[key]), strict=True))
    assert not torch.equal(first[0], windows(trainers["adamw", 1])[0])
    source = trainers["adamw", 0].source
    x, y = next(source.epoch(1, torch.Generator().manual_seed(0), None))
    assert x.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets: the inputs shifted by one
    # Evaluation windows: fixed, evenly spaced, the same for every seed.
    val = [x for x, _ in source.eval_batches("val", 5, None)]
    assert [v.shape[0] for v in val] == [5, 5, 2]
    other = trainers["adamw", 1].source
    assert torch.equal(
        torch.cat(val), torch.cat([x for x, _ in other.eval_batches("val", 12, None)])
    )
    last = source.streams["val"].numel() - 17
    assert source.eval_starts["val"][0] == 0 and source.eval_starts["val"][-1] == last


def test_killed_lm_run_resumes_to_identical_results(text_cache, tmp_path):
    """SIGKILL after epoch 1's checkpoint: the resumed run draws the windows an
    uninterrupted one draws (the window generator is in the checkpoint)."""

    def cli(root: Path, kill: bool) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        env.pop(KILL_AFTER_EPOCH_ENV, None)
        if kill:
            env[KILL_AFTER_EPOCH_ENV] = "1"
        command = [
            sys.executable, "-m", "amsgrad_repro.cli", "train", "--task", "charlm",
            "--optimizer", "adamw-amsgrad", "--seed", "2",
            "--settings", json.dumps(lm_settings()), "--dataset-cache", str(text_cache),
            "--out", str(root / "run"), "--checkpoint-dir", str(root / "ckpt"),
            "--device", "cpu", "--threads", "1",
        ]  # fmt: skip
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    killed = cli(tmp_path / "resumed", kill=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = cli(tmp_path / "resumed", kill=False)
    assert resumed.returncode == 0 and "resuming after epoch 1" in resumed.stdout
    straight = cli(tmp_path / "straight", kill=False)
    assert straight.returncode == 0, straight.stderr[-2000:]
    a, b = (
        pd.read_csv(tmp_path / name / "run" / "metrics.csv").drop(columns=["wall_time"])
        for name in ("resumed", "straight")
    )
    assert a["step"].tolist() == [5, 10, 15]
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # The per-step losses behind the spike count are in the checkpoint: the resumed run
    # finds the spikes that compare with epoch 1's losses too (with window 1, a spike at
    # step 6 or before; the straight run has one).
    spikes = [
        json.loads((tmp_path / name / "run" / "run.json").read_text())
        for name in ("resumed", "straight")
    ]
    assert spikes[0]["loss_spikes"] == spikes[1]["loss_spikes"]
    assert any(step <= 5 + 1 for step in spikes[1]["loss_spikes"]["steps"])
    assert spikes[0]["final"]["train_loss_spikes"] == len(spikes[1]["loss_spikes"]["steps"])


def test_gpt_parameter_count_initial_loss_and_causal_mask():
    spec = GptSpec(vocab_size=84, context=32, layers=2, heads=4, dim=32)
    torch.manual_seed(0)
    model = Gpt(spec)
    d, per_block = spec.dim, 2 * 2 * spec.dim  # two LayerNorms, weight and bias
    per_block += 3 * d * d + 3 * d + d * d + d + 4 * d * d + 4 * d + 4 * d * d + d
    expected = 84 * d + 32 * d + spec.layers * per_block + 2 * d  # tied output layer
    assert sum(p.numel() for p in model.parameters()) == expected
    ids = torch.randint(84, (4, 32), generator=torch.Generator().manual_seed(1))
    logits = model(ids)
    loss = F.cross_entropy(logits.flatten(0, 1), ids.roll(-1, 1).flatten())
    assert abs(float(loss.detach()) - math.log(84)) < 0.1  # initialisation: near uniform
    changed = ids.clone()
    changed[:, 20] = (changed[:, 20] + 1) % 84
    after = model(changed)
    assert torch.equal(after[:, :20], logits[:, :20])  # the past does not see the future
    assert not torch.allclose(after[:, 20], logits[:, 20])
    exempt = {id(p) for p in model.no_decay_parameters()}
    assert id(model.tokens.weight) in exempt and id(model.blocks[0].ln1.weight) in exempt
    assert id(model.blocks[0].fc.bias) in exempt and id(model.blocks[0].fc.weight) not in exempt


def test_a_few_steps_learn_the_tiny_text(text_cache, tmp_path):
    """60 steps on the verse: the held-out loss ends below the unigram entropy of the
    training text (what a model without context reaches) and far below its start; bpc is
    the loss over ln 2; the record names the evaluation windows."""
    changes = {"epochs": 12, "hparams": {"lr": 0.02, "lr_schedule": "warmup_cosine"}}
    record = train(lm_request(text_cache, tmp_path, **changes))
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    counts = np.bincount(load_cache(text_cache).train_tokens.numpy())
    p = counts[counts > 0] / counts.sum()
    unigram = float(-(p * np.log(p)).sum())  # 2.84 nats
    assert table["val_loss"].iloc[-1] < unigram - 0.3
    assert table["train_loss"].iloc[-1] < table["train_loss"].iloc[0] - 0.5
    np.testing.assert_allclose(table["test_bpc"], table["test_loss"] / math.log(2), rtol=1e-6)
    assert record["data"]["sizes"]["val_windows"] == 12 and record["steps"] == 60
    # The run's samples page (kinds.SAMPLES): the test prompt, then each continuation.
    page = tmp_path / "run" / "samples.txt"
    assert record["artifacts"] == [str(page)]
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "metrics.csv", "run.json", "checkpoint.pt", "samples.txt"
    }  # fmt: skip
    sections = parse_page(page.read_text())
    data = load_cache(text_cache)
    assert sections[0][1] == data.decode(data.test_tokens[:16])  # context 16
    assert [what for what, _ in sections[1:]] == ["greedy", "temperature 0.8, seed 0"]
    assert all(len(text) == SAMPLE_LENGTH for _, text in sections[1:])  # one byte a token


def test_the_samples_page_is_greedy_then_seeded_draws(text_cache):
    """The greedy continuation's first character is the argmax after the prompt; the same
    seed draws the same page, another seed another draw at temperature 0.8 (a random model
    over 25 characters: 500 equal draws by chance have probability below 25^-100)."""
    data = load_cache(text_cache)
    torch.manual_seed(0)
    model = build_model(lm_settings()["model"], data.meta)
    prompt = data.test_tokens[:16].long()
    first = int(model(prompt[None])[0, -1].argmax())
    greedy = continue_text(model, prompt, 40, 0.0)
    assert int(greedy[0]) == first and torch.equal(greedy, continue_text(model, prompt, 40, 0.0))
    page = samples_page(model, data, seed=3)
    assert page == samples_page(model, data, seed=3)
    assert parse_page(page)[2][1] != parse_page(samples_page(model, data, seed=4))[2][1]
    assert parse_page(page)[1] == parse_page(samples_page(model, data, seed=4))[1]  # greedy
    assert model.training  # its mode is restored


def test_the_spike_count_is_over_the_batch_losses_trained_on(text_cache, tmp_path):
    """The buffer behind the count holds each step's batch loss: its first entry is the
    initial loss, each log interval's mean is that row's train_loss (equal batches, so the
    running mean is the plain mean: float32 sums of 5 terms, 1e-6 relative), and the count
    in run.json is the rule applied to it."""
    trainer = Trainer(lm_request(text_cache, tmp_path))
    record = trainer.run()
    losses = trainer.step_losses.numpy()
    assert np.isfinite(losses).all() and losses[0] == np.float32(trainer.initial_loss)
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    for row in table.itertuples():
        interval = losses[int(row.step) - 5 : int(row.step)]
        assert row.train_loss == pytest.approx(float(interval.mean()), rel=1e-6)
    rule = SpikeRule(factor=1.0001, window=1)
    expected = [int(i) + 1 for i in np.flatnonzero(losses[1:] > 1.0001 * losses[:-1]) + 1]
    assert record["loss_spikes"]["steps"] == expected == [int(i) + 1 for i in rule.spikes(losses)]
    assert record["final"]["train_loss_spikes"] == len(expected) > 0


@pytest.mark.parametrize("optimizer", ["adam", "amsgrad"])
def test_the_paper_forms_train_the_lm(text_cache, tmp_path, optimizer):
    """Adam and AMSGrad as the paper writes them (no bias correction, ε 0) on the tiny
    text: the run completes and its held-out loss falls (a zero denominator, e.g. an
    embedding row of a token absent from a batch, gives a zero step, not NaN)."""
    record = train(lm_request(text_cache, tmp_path, optimizer, optimizers=[optimizer]))
    assert record["status"] == "completed" and record["hparams"]["eps"] == 0.0
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert np.isfinite(table.filter(like="_loss").to_numpy()).all()
    assert table["val_loss"].iloc[-1] < table["val_loss"].iloc[0]


def test_weight_decay_spares_the_exempt_group(text_cache, tmp_path):
    """The LM's optimizers get two groups: weight matrices with the task's decay, the
    biases, norms and embeddings without (ADOPT's and AdaBelief's decoupled decay too: a
    native family's first group takes the run's decay, the second its own 0); an optimizer
    with no weight decay (a plug-in that declares none) gets one."""
    for optimizer in ("adamw", "adopt", "adabelief"):
        trainer = Trainer(lm_request(text_cache, tmp_path / optimizer, optimizer=optimizer))
        groups = trainer.optimizer.param_groups
        decays = [g.get("weight_decay", trainer.optimizer_settings.weight_decay) for g in groups]
        assert decays == [0.1, 0.0]
        exempt = {id(p) for p in trainer.model.no_decay_parameters()}
        assert {id(p) for p in groups[1]["params"]} == exempt
    request = lm_request(text_cache, tmp_path / "sgd", optimizer="plain-sgd")
    plugin = {"plain-sgd": {"class": "torch.optim:SGD", "hparams": {"lr": 0.01}}}
    plain = Trainer(dataclasses.replace(request, plugins=plugin))
    assert not hasattr(plain.optimizer_settings, "weight_decay")
    assert len(plain.optimizer.param_groups) == 1


@pytest.mark.parametrize("name, amsgrad", [("amsgrad", True), ("adam", False)])
def test_a_native_groups_own_weight_decay_is_torch_adamws(name, amsgrad):
    """A parameter group's ``weight_decay`` in a native family equals torch.optim.AdamW
    with the same groups (float64: equal to rounding, 1e-12), and the group without decay
    moves differently from one with it."""
    from amsgrad_repro.optimizers import BUILTINS
    from amsgrad_repro.optimizers.torch_optimizer import build

    hp = {"lr": 0.01, "beta2": 0.999, "bias_correction": True, "eps": 1e-8, "weight_decay": 0.05}
    spec = BUILTINS[name]
    start = torch.randn(2, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grads = torch.randn(20, 2, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(make) -> torch.Tensor:
        params = [start[i].clone().requires_grad_(True) for i in range(2)]
        optimizer = make([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}])
        for g in grads:
            for param, grad in zip(params, g, strict=True):
                param.grad = grad.clone()
            optimizer.step()
        return torch.stack([p.detach() for p in params])

    mine = run(lambda groups: build(spec, groups, spec.resolve(("", hp)))[0])
    theirs = run(
        lambda groups: torch.optim.AdamW(groups, lr=0.01, weight_decay=0.05, amsgrad=amsgrad)
    )
    torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    undecayed = run(
        lambda groups: build(spec, groups, spec.resolve(("", {**hp, "weight_decay": 0.0})))[0]
    )
    assert torch.equal(undecayed[1], mine[1]) and not torch.allclose(undecayed[0], mine[0])


def test_the_lm_figure_shows_bits_per_character_on_train_validation_and_test():
    from amsgrad_repro.train.figure import build_training_figure

    rows = [
        {"optimizer": o, "step": s, "metric": f"{split}_{q}", "mean": 3.0 / s,
         "median": 3.0 / s, "lo": 2.5 / s, "hi": 3.5 / s, "n": 5}
        for o in ("adamw", "adamw-amsgrad") for s in (50, 100)
        for split in ("train", "val", "test") for q in ("loss", "bpc")
    ]  # fmt: skip
    task = {**lm_settings(), "dataset": "shakespeare"}
    runs = [
        {"optimizer": o, "seed": s, "status": "completed", "diverged_at_step": None}
        for o in ("adamw", "adamw-amsgrad")
        for s in range(5)
    ]
    fig = build_training_figure("charlm", pd.DataFrame(rows), task, runs)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        "train bits per character",
        "validation bits per character",
        "test bits per character",
    ]
    assert all(len(ax.lines) >= 2 for ax in fig.axes[:3])  # a curve per optimizer
    # A second x-axis in tokens seen: batch 8 x context 16 = 128 predicted tokens a step.
    for ax in fig.axes[:3]:
        (top,) = ax.child_axes
        assert top.get_xlabel() == "tokens seen (128 per step)"
        assert top.get_xlim() == pytest.approx(tuple(128 * v for v in ax.get_xlim()))
    # The image kinds have none.
    images = build_training_figure("toy", pd.DataFrame(rows), {**task, "kind": "vae"}, runs)
    assert not any(ax.child_axes for ax in images.axes)


def test_the_text_samples_figure_sets_each_optimizers_page_in_a_row(tmp_path):
    """samples-figure on an LM task: a row per optimizer (its first seed), a column per
    continuation, the prompt once in the heading; text with ``$`` is drawn as it is."""
    from amsgrad_repro.train.figure import _wrapped, samples_figure

    runs = []
    for optimizer in ("adamw", "adamw-amsgrad"):
        for seed in (1, 0):
            folder = tmp_path / optimizer / str(seed)
            folder.mkdir(parents=True)
            sections = [("prompt", "To be, or not"), ("greedy", f"{optimizer} $x$\n" * 20),
                        ("temperature 0.8, seed 0", "to be $ or\n" * 30)]  # fmt: skip
            (folder / "samples.txt").write_text(format_page(sections))
            record = {"optimizer": optimizer, "seed": seed, "status": "completed",
                      "final": {"test_bpc": 2.5 + seed}}  # fmt: skip
            (folder / "run.json").write_text(json.dumps(record))
            runs.append(folder / "run.json")
    settings = {**lm_settings(), "dataset": "shakespeare"}
    samples_figure("charlm", settings, runs, [tmp_path / "text.png"])
    assert (tmp_path / "text.png").stat().st_size > 5_000
    # What a barely trained model draws (measured: Lion's greedy page at deep_quick opens
    # with 63 newlines) is shown compactly, a control character as one cell.
    assert _wrapped("\n" * 63 + "A\tb\n\nc") == "[63 empty lines]\nA·b\n\nc"
    assert _wrapped("x" * 130).split("\n") == ["x" * 64, "x" * 64, "xx"]


def test_bfloat16_autocast_trains_in_mixed_precision_and_is_recorded(text_cache, tmp_path):
    """performance.autocast bfloat16 (the deep preset's GPU recipe), here on the CPU: the
    weights stay float32, the run completes and learns, run.json records the switch, and
    the first logged loss (a mean over 5 steps from initialisation, where logits are near 0
    and the loss about ln 25 = 3.2 nats) agrees with the float32 run's to bfloat16's
    rounding (u = 2^-8 = 3.9e-3 relative, 1e-2 allowed), while the two runs' later losses
    differ (the precision did change)."""
    runs = {}
    for autocast in ("none", "bfloat16"):
        trainer = Trainer(
            lm_request(text_cache, tmp_path / autocast, performance={"autocast": autocast})
        )
        runs[autocast] = (trainer.run(), pd.read_csv(tmp_path / autocast / "run" / "metrics.csv"))
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    (mixed, table), (full, full_table) = runs["bfloat16"], runs["none"]
    assert mixed["status"] == "completed" and mixed["performance"]["autocast"] == "bfloat16"
    assert full["performance"]["autocast"] == "none"
    assert table["train_loss"].iloc[0] == pytest.approx(full_table["train_loss"].iloc[0], rel=1e-2)
    assert table["val_loss"].iloc[-1] < table["val_loss"].iloc[0]
    assert not np.array_equal(table["train_loss"], full_table["train_loss"])
