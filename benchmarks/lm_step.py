"""Benchmark: the engine's language-model step vs a plain PyTorch loop of the same model.

Both train the same GPT (``train.models`` ``gpt``, built from the same seed) on random
windows of ``context`` + 1 tokens of one resident uint8 token stream, with gradient
clipping at 1.0 and AMSGrad with decoupled weight decay:

* plain: the loop a nanoGPT-style script writes — ``torch.randint`` window starts, a
  gather, forward, cross-entropy, backward, ``clip_grad_norm_``,
  ``torch.optim.AdamW(amsgrad=True)`` (foreach) and ``loss.item()`` every step;
* engine: :class:`amsgrad_repro.train.engine.Trainer` with ``kind: lm`` (its
  ``TokenWindows`` batch source, the project's ``adamw-amsgrad``, warm-up + cosine, no
  per-step host sync), whole "epochs" of ``epoch_steps`` steps, each ending with its log
  point (one sync and an evaluation of ``eval_windows`` windows, included in the time).

The token stream is seeded random bytes over an 84-symbol vocabulary (the size of the
Shakespeare cache's): the time of a step does not depend on the text, so no dataset is
needed. Each variant runs in its own process, one after the other, so its peak memory
(max RSS, or the CUDA allocator's peak) is its own; the table prints tokens/s per core
(tokens/s divided by the threads) beside the plain loop's in the same run.

    .venv/bin/python benchmarks/lm_step.py                       # the CPU default model
    .venv/bin/python benchmarks/lm_step.py --layers 2 --dim 64 --context 64 --steps 200
    .venv/bin/python benchmarks/lm_step.py --device cuda --steps 500
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VOCAB = 84
TOKENS = {"train": 1_000_000, "val": 50_000, "test": 50_000}
WARMUP = 5


def peak_memory_mb(device: str) -> float:
    """This process's peak memory: the CUDA allocator's on a GPU, max RSS on the CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_token_cache(folder: Path) -> Path:
    """A token cache in the data stage's format, filled with seeded random tokens."""
    import numpy as np

    from amsgrad_repro.data.cache import TEXT_KIND, CacheWriter

    rng = np.random.default_rng(0)
    writer = CacheWriter(folder)
    writer.array("vocab", np.arange(32, 32 + VOCAB, dtype=np.uint8))
    for split, count in TOKENS.items():
        writer.array(f"{split}_tokens", rng.integers(0, VOCAB, count, dtype=np.uint8))
        writer.array(f"{split}_starts", np.zeros(1, dtype=np.int64))
    writer.commit(
        {
            "name": "bench",
            "format": "text",
            "kind": TEXT_KIND,
            "sha256": "0" * 64,
            "vocab_size": VOCAB,
            **{f"num_{split}": count for split, count in TOKENS.items()},
        }
    )
    return folder / "meta.json"


def settings_for(args: argparse.Namespace, epochs: int) -> dict[str, Any]:
    """The task settings both variants train with (the engine reads them all)."""
    return {
        "kind": "lm",
        "dataset": "bench",
        "model": {
            "arch": "gpt",
            "layers": args.layers,
            "heads": args.heads,
            "dim": args.dim,
            "context": args.context,
        },
        "optimizers": ["adamw-amsgrad"],
        "hparams": {"lr": 1e-3, "lr_schedule": "warmup_cosine", "weight_decay": 0.1},
        "grad_clip_norm": 1.0,
        "batch_size": args.batch,
        "epochs": epochs,
        "epoch_steps": args.epoch_steps,
        "eval_windows": args.eval_windows,
        "eval_batch_size": args.batch,
        "log_every": 0,
    }


def plain(args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """The nanoGPT-style loop: random windows, forward, backward, clip, AdamW(amsgrad)."""
    import torch
    import torch.nn.functional as F

    from amsgrad_repro.data import load_cache
    from amsgrad_repro.train.models import build_model

    device = torch.device(args.device)
    data = load_cache(cache)
    stream = data.tokens("train").to(device)
    torch.manual_seed(0)
    model = build_model(settings_for(args, 1)["model"], {"vocab_size": VOCAB}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, amsgrad=True)
    offsets = torch.arange(args.context + 1, device=device)
    generator = torch.Generator().manual_seed(0)
    started, loss_value = 0.0, float("nan")
    for step in range(args.steps + WARMUP):
        if step == WARMUP:
            _sync(device)
            started = time.perf_counter()
        starts = torch.randint(stream.numel() - args.context, (args.batch,), generator=generator)
        block = stream[starts.to(device)[:, None] + offsets].long()
        logits = model(block[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), block[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
    elapsed = time.perf_counter() - started
    return {"steps": args.steps, "seconds": elapsed, "final_loss": loss_value}


def engine(args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """The engine's own epoch loop (``Trainer.train_epoch``) for ``--steps`` steps."""
    import torch

    from amsgrad_repro.train.engine import RunRequest, Trainer
    from amsgrad_repro.train.progress import Progress

    epochs = -(-args.steps // args.epoch_steps)
    tmp = Path(tempfile.mkdtemp(prefix="lm-bench-"))
    try:
        request = RunRequest(
            "bench", "adamw-amsgrad", 0, settings_for(args, epochs + 1), cache, tmp, tmp,
            args.device,
        )  # fmt: skip
        trainer = Trainer(request)
        progress = Progress("bench", (epochs + 1) * args.epoch_steps, 0, bar=False)
        trainer._started = time.perf_counter()
        trainer.steps_per_epoch = WARMUP
        trainer.train_epoch(progress)  # warm-up: first calls, allocator
        trainer.steps_per_epoch = args.epoch_steps
        _sync(torch.device(args.device))
        started = time.perf_counter()
        for _ in range(epochs):
            trainer.train_epoch(progress)
        _sync(torch.device(args.device))
        elapsed = time.perf_counter() - started
        loss = float(trainer.rows[-1]["train_loss"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"steps": epochs * args.epoch_steps, "seconds": elapsed, "final_loss": loss}


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = (plain if args.variant == "plain" else engine)(args, args.cache)
    result["peak_mb"] = peak_memory_mb(args.device)
    print("RESULT " + json.dumps(result))


OPTIONS = ("steps", "epoch_steps", "eval_windows", "threads", "device", "batch", "layers")
OPTIONS += ("heads", "dim", "context", "cache")


def run_child(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--variant", variant]
    for key in OPTIONS:
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--epoch-steps", type=int, default=50)
    parser.add_argument("--eval-windows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=("plain", "engine"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    folder = Path(tempfile.mkdtemp(prefix="lm-bench-cache-"))
    try:
        args.cache = write_token_cache(folder / "bench")
        print(
            f"device {args.device}, {args.threads} thread(s); gpt {args.layers}x{args.heads}"
            f"x{args.dim}, context {args.context}, batch {args.batch}; {args.steps} steps "
            f"after {WARMUP} warm-up steps; engine evaluates {args.eval_windows} windows "
            f"every {args.epoch_steps} steps (counted in its time)"
        )
        results = {v: run_child(args, v) for v in ("plain", "engine")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    tokens_per_step = args.batch * args.context
    rates = {v: r["steps"] * tokens_per_step / r["seconds"] for v, r in results.items()}
    print(f"{'variant':7} {'tokens/s/core':>13} {'ms/step':>8} {'peak MB':>8} {'vs plain':>9}")
    for variant, result in results.items():
        per_core = rates[variant] / args.threads
        ms = 1000 * result["seconds"] / result["steps"]
        ratio = rates[variant] / rates["plain"]
        print(f"{variant:7} {per_core:13.0f} {ms:8.1f} {result['peak_mb']:8.0f} {ratio:8.2f}x")
    for variant, result in results.items():
        if result["final_loss"] != result["final_loss"]:  # NaN: the timing means nothing
            raise SystemExit(f"{variant}: the loss is not finite")


if __name__ == "__main__":
    main()
