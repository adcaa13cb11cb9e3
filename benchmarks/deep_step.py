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
epoch, whose end evaluates the 128 test images (included in its time, as in a real run).
Its data are the same kind of random images (or DeepOBS's points), written as a cache in
the data stage's format; ``engine / plain`` is the loop's overhead (1.00x: none).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
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


def make_step(name: str, args: argparse.Namespace) -> tuple[Callable[[], None], int, int]:
    """A closure running one training step, the parameter count and the batch size."""
    arch, kind_name, batch, inputs = MODELS[name]
    batch = args.batch or batch
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    torch.manual_seed(0)
    model = build_model({"arch": arch}, META).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if kind_name == "quadratic":
        points = torch.from_numpy(quadratic_points("train")).to(device)

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            return model(points[index])

        pool = points.shape[0]
    else:
        kind = CLASSIFIER if kind_name == "classifier" else VAE
        pool = args.pool
        data = torch.randint(0, 256, (pool, 1, 28, 28), dtype=torch.uint8, device=device)
        labels = torch.randint(0, 10, (pool,), device=device)
        transform = kind.input_transform(data, {"input": inputs})

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            x = transform(data[index], True, gen)
            return kind.batch_loss(model, x, labels[index], gen)[0]

    def step() -> None:
        index = torch.randint(0, pool, (batch,), generator=gen, device=device)
        optimizer.zero_grad(set_to_none=True)
        loss_of(index).backward()
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters()), batch


def image_cache(folder: Path, pool: int) -> Path:
    """``pool`` random Fashion-MNIST-shaped training images and 128 test images, as a
    dataset cache (no validation split)."""
    import numpy as np

    from amsgrad_repro.data.cache import CacheWriter

    rng = np.random.default_rng(0)
    writer = CacheWriter(folder)
    for split, count in (("train", pool), ("test", 128)):
        writer.array(f"{split}_x", rng.integers(0, 256, (count, 1, 28, 28), dtype=np.uint8))
        writer.array(f"{split}_y", rng.integers(0, 10, count).astype(np.int64))
    writer.array("val_index", np.zeros(0, dtype=np.int64))
    writer.commit(
        {"name": "bench", "md5": "0" * 32, "num_classes": 10, "image_shape": [1, 28, 28],
         "classes": None, "num_train": pool, "num_test": 128, "num_val": 0}
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
        "epochs": 1 + -(-steps * batch // pool), "log_every": 0, "eval_batch_size": 128,
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
    step, params, batch = make_step(name, args)
    for _ in range(args.warmup):
        step()
    sync(args.device)
    steps = args.steps * (20 if name in ("logreg", "quadratic_deep") else 1)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(args.device)
    elapsed = time.perf_counter() - started
    return {"params": params, "batch": batch, "steps_per_s": steps / elapsed}


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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["logreg"] + [n for n in args.models if n != "logreg"]
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    header = ("model", "batch", "params", "steps/s", "ms/step", "vs logreg", "engine", "eng/plain")
    print(
        f"{header[0]:16s} {header[1]:>5s} {header[2]:>11s} "
        + " ".join(f"{h:>9s}" for h in header[3:])
    )
    folder = Path(tempfile.mkdtemp(prefix="deep-bench-data-"))
    try:
        caches = {} if args.no_engine else {
            "images": image_cache(folder / "images", args.pool),
            "quadratic": quadratic_cache(folder),
        }  # fmt: skip
        base = None
        for name in names:
            row = measure(name, args)
            base = base or row["steps_per_s"]
            engine = engine_rate(name, args, caches) if caches else float("nan")
            print(
                f"{name:16s} {row['batch']:5d} {row['params']:11,d} {row['steps_per_s']:9.2f} "
                f"{1000 / row['steps_per_s']:9.2f} {row['steps_per_s'] / base:9.4f} "
                f"{engine:9.2f} {engine / row['steps_per_s']:8.2f}x"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
