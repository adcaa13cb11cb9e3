"""Benchmark: training steps per second of the deep models (issue 19) beside logistic
regression, in one invocation on the same thread count.

One step is what the engine does per iteration: gather a batch by index from uint8 images
resident on the device, the task kind's input transform (with the ResNet recipe's crop and
flip for ``resnet20``), the kind's ``batch_loss``, backward and an optimizer step (Adam;
the optimizer's cost is the same for every Adam-family method). Data are random uint8
images of Fashion-MNIST's shape, so no dataset is needed. ``quadratic_deep`` draws its
batch from DeepOBS's 1000 points.

    .venv/bin/python benchmarks/deep_step.py                   # CPU, every model
    .venv/bin/python benchmarks/deep_step.py --models resnet20 --steps 5 --threads 1
    .venv/bin/python benchmarks/deep_step.py --device cuda

Prints, per model, its batch size, parameters, steps/s, ms/step and the ratio to logistic
regression's steps/s, from which a preset's wall time is estimated (docs/deep.md).

The engine column runs the same model through the project's own loop instead
(:class:`amsgrad_repro.train.engine.Trainer`, ``Trainer.train_epoch``): the dataset cache
on the device, its batch source, ``torch-adam`` (``torch.optim.Adam`` itself, so the two
differ only in the loop), the running means kept on the device and one host sync per
epoch, whose end evaluates the test set (128 images, or DeepOBS's 1000 test points). The
plain loop does the same work a hand-written script does: after every epoch of the same
length it evaluates the same test set in batches of 128 under ``no_grad`` (eval mode for
BatchNorm) and reads the loss back, so ``engine / plain`` compares like with like and is
the loop's overhead (1.00x: none). Its data are the same kind of random images (or
DeepOBS's points), written as a cache in the data stage's format.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from amsgrad_repro.train.kinds.classifier import KIND as CLASSIFIER
from amsgrad_repro.train.kinds.vae import KIND as VAE
from amsgrad_repro.train.models import build_model
from amsgrad_repro.train.models.deepobs import quadratic_points

META = {"image_shape": [1, 28, 28], "num_classes": 10}
# name: (arch, kind, batch size, input settings) — DeepOBS's batch sizes, 128 for ResNet.
MODELS: dict[str, tuple[str, str, int, dict]] = {
    "logreg": ("logreg", "classifier", 128, {}),
    "fmnist_mlp": ("fmnist_mlp", "classifier", 128, {}),
    "fmnist_2c2d": ("fmnist_2c2d", "classifier", 128, {}),
    "fmnist_vae": ("fmnist_vae", "vae", 64, {}),
    "resnet20": ("resnet20", "classifier", 128, {"augment": "crop_flip", "crop_padding": 4}),
    "quadratic_deep": ("quadratic_deep", "quadratic", 128, {}),
}


EVAL_BATCH = 128
TEST_IMAGES = 128


@dataclass
class PlainLoop:
    """A hand-written training loop of one model: ``step()`` trains on one batch,
    ``evaluate()`` is the end of an epoch (the test set's mean loss, read back)."""

    step: Callable[[], None]
    evaluate: Callable[[], float]
    params: int
    batch: int
    epoch_steps: int  # the engine's epoch: ceil(training pool / batch)


def plain_loop(name: str, args: argparse.Namespace) -> PlainLoop:
    """The plain PyTorch loop of ``name`` on the benchmark's data."""
    arch, kind_name, batch, inputs = MODELS[name]
    batch = args.batch or batch
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    torch.manual_seed(0)
    model = build_model({"arch": arch}, META).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if kind_name == "quadratic":
        points = torch.from_numpy(quadratic_points("train")).to(device)
        test = torch.from_numpy(quadratic_points("test")).to(device)

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            return model(points[index])

        def test_loss(start: int) -> torch.Tensor:
            return model(test[start : start + EVAL_BATCH])

        pool, test_size = points.shape[0], test.shape[0]
    else:
        kind = CLASSIFIER if kind_name == "classifier" else VAE
        pool, test_size = args.pool, TEST_IMAGES
        data = torch.randint(0, 256, (pool, 1, 28, 28), dtype=torch.uint8, device=device)
        labels = torch.randint(0, 10, (pool,), device=device)
        test_x = torch.randint(0, 256, (test_size, 1, 28, 28), dtype=torch.uint8, device=device)
        test_y = torch.randint(0, 10, (test_size,), device=device)
        transform = kind.input_transform(data, {"input": inputs})

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            x = transform(data[index], True, gen)
            return kind.batch_loss(model, x, labels[index], gen)[0]

        def test_loss(start: int) -> torch.Tensor:
            x = transform(test_x[start : start + EVAL_BATCH], False, gen)
            return kind.batch_loss(model, x, test_y[start : start + EVAL_BATCH], gen)[0]

    def step() -> None:
        index = torch.randint(0, pool, (batch,), generator=gen, device=device)
        optimizer.zero_grad(set_to_none=True)
        loss_of(index).backward()
        optimizer.step()

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        starts = range(0, test_size, EVAL_BATCH)
        total = sum(test_loss(s) * min(EVAL_BATCH, test_size - s) for s in starts)
        model.train()
        return float(total) / test_size  # the epoch's one host sync

    params = sum(p.numel() for p in model.parameters())
    return PlainLoop(step, evaluate, params, batch, math.ceil(pool / batch))


def image_cache(folder: Path, pool: int) -> Path:
    """``pool`` random Fashion-MNIST-shaped training images and the test images, as a
    dataset cache (no validation split)."""
    import numpy as np

    from amsgrad_repro.data.cache import CacheWriter

    rng = np.random.default_rng(0)
    writer = CacheWriter(folder)
    for split, count in (("train", pool), ("test", TEST_IMAGES)):
        writer.array(f"{split}_x", rng.integers(0, 256, (count, 1, 28, 28), dtype=np.uint8))
        writer.array(f"{split}_y", rng.integers(0, 10, count).astype(np.int64))
    writer.array("val_index", np.zeros(0, dtype=np.int64))
    writer.commit(
        {"name": "bench", "md5": "0" * 32, "num_classes": 10, "image_shape": [1, 28, 28],
         "classes": None, "num_train": pool, "num_test": TEST_IMAGES, "num_val": 0}
    )  # fmt: skip
    return folder / "meta.json"


def quadratic_cache(folder: Path) -> Path:
    """DeepOBS's quadratic points, made by the data stage itself (a generated dataset)."""
    from amsgrad_repro.config import load
    from amsgrad_repro.data.prepare import prepare

    spec = load(Path(__file__).parents[1] / "config.yaml")["datasets"]["deepobs_quadratic"]
    out = folder / "deepobs_quadratic.pt"
    prepare(folder, "deepobs_quadratic", dict(spec), out)
    return out


def engine_rate(name: str, args: argparse.Namespace, caches: dict[str, Path]) -> float:
    """Steps/s of the engine's own epoch loop for ``name`` (after a warm-up epoch)."""
    from amsgrad_repro.train.engine import RunRequest, Trainer
    from amsgrad_repro.train.progress import Progress

    arch, kind, batch, inputs = MODELS[name]
    batch = args.batch or batch
    steps = args.steps * (20 if name in ("logreg", "quadratic_deep") else 1)
    dataset = "quadratic" if kind == "quadratic" else "images"
    pool = 1000 if kind == "quadratic" else args.pool
    settings: dict[str, Any] = {
        "kind": kind, "dataset": dataset, "model": {"arch": arch}, "input": inputs,
        "optimizers": ["torch-adam"], "hparams": {"lr": 1e-3}, "batch_size": batch,
        "epochs": 1 + -(-steps * batch // pool), "log_every": 0, "eval_batch_size": EVAL_BATCH,
        "holdout_val": False,
    }  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="deep-bench-"))
    try:
        request = RunRequest(
            name, "torch-adam", 0, settings, caches[dataset], tmp, tmp, args.device
        )
        trainer = Trainer(request)
        progress = Progress(name, settings["epochs"] * trainer.steps_per_epoch, 0, bar=False)
        trainer._started = time.perf_counter()
        trainer.train_epoch(progress)  # warm-up: first calls, allocator
        sync(args.device)
        started = time.perf_counter()
        done = 0
        while done < steps:
            trainer.train_epoch(progress)
            done += trainer.steps_per_epoch
        sync(args.device)
        return done / (time.perf_counter() - started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    """Steps/s of the plain loop over whole epochs (as the engine is timed), after
    ``args.warmup`` steps and one evaluation."""
    loop = plain_loop(name, args)
    for _ in range(args.warmup):
        loop.step()
    loop.evaluate()
    sync(args.device)
    wanted = args.steps * (20 if name in ("logreg", "quadratic_deep") else 1)
    steps = loop.epoch_steps * math.ceil(wanted / loop.epoch_steps)
    started = time.perf_counter()
    for done in range(1, steps + 1):
        loop.step()
        if done % loop.epoch_steps == 0:
            loop.evaluate()
    sync(args.device)
    elapsed = time.perf_counter() - started
    return {"params": loop.params, "batch": loop.batch, "steps_per_s": steps / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=0, help="0: each model's own")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (x20 for tiny ones)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pool", type=int, default=2048, help="images resident on the device")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--no-engine", action="store_true", help="the plain steps only")
    parser.add_argument(
        "--repeats", type=int, default=3, help="plain/engine pairs per model, interleaved"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["logreg"] + [n for n in args.models if n != "logreg"]
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    header = ("model", "batch", "params", "steps/s", "ms/step", "vs logreg", "engine", "eng/plain")
    print(
        f"{header[0]:16s} {header[1]:>5s} {header[2]:>11s} "
        + " ".join(f"{h:>9s}" for h in header[3:])
        + "  (pairs' range)"
    )
    folder = Path(tempfile.mkdtemp(prefix="deep-bench-data-"))
    try:
        caches = {} if args.no_engine else {
            "images": image_cache(folder / "images", args.pool),
            "quadratic": quadratic_cache(folder),
        }  # fmt: skip
        base = None
        for name in names:
            # Interleaved pairs: a shared machine's speed drifts by ±10% over a minute, so
            # each engine measurement sits next to its plain one; medians of each column.
            plain, engine = [], []
            for _ in range(args.repeats):
                row = measure(name, args)
                plain.append(row["steps_per_s"])
                engine.append(engine_rate(name, args, caches) if caches else float("nan"))
            rate = statistics.median(plain)
            base = base or rate
            ratios = [e / p for e, p in zip(engine, plain, strict=True)]
            print(
                f"{name:16s} {row['batch']:5d} {row['params']:11,d} {rate:9.2f} "
                f"{1000 / rate:9.2f} {rate / base:9.4f} "
                f"{statistics.median(engine):9.2f} {statistics.median(engine) / rate:8.2f}x"
                f"  ({min(ratios):.2f}-{max(ratios):.2f})"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
