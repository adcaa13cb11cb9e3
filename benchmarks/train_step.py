"""Benchmark: the training engine vs the naive loop of public reproductions, on Fashion-MNIST.

Naive loop (what public reproductions of the paper do): ``torchvision.datasets.FashionMNIST``
read from the IDX files, per-sample ``ToTensor`` + ``Normalize`` transforms, a shuffled
``DataLoader`` (batch 128), ``torch.optim.Adam(amsgrad=True)`` and ``loss.item()`` every
step for the running loss. Engine: :class:`amsgrad_repro.train.engine.Trainer` on the
converted cache (uint8 tensors on the device, index shuffling, no per-step host sync) with
the same optimizer (``torch-amsgrad``). Both train logistic regression and the MLP for a
fixed number of steps on one CPU thread; each variant runs in its own process so its peak
memory (max RSS, or the CUDA allocator peak) is its own.

    .venv/bin/python benchmarks/train_step.py                 # needs data/cache/fashion_mnist
    .venv/bin/python benchmarks/train_step.py --naive-steps 200 --engine-steps 4000
    .venv/bin/python benchmarks/train_step.py --device cuda

The raw IDX files come from ``--raw`` (default: Debian's dataset-fashion-mnist).

Measured on the shared 2-core development machine (CPU, 1 thread), two runs: logreg naive
70-75 steps/s vs engine 1209-1376 steps/s (16-20x), MLP 65-76 vs 638-765 steps/s
(9.7-10.0x); peak RSS about 730-760 MB either way (mostly the torch import). The MLP's
engine step (1.3 ms) is close to its bare forward+backward+Adam cost (1.2 ms), so the MLP
ratio is bounded by compute, not by the data path.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAW_DEFAULT = Path("/usr/share/datasets/fashion-mnist")
CACHE_DEFAULT = Path("data/cache/fashion_mnist")
BATCH = 128
WARMUP = 10


def peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive(model_name: str, steps: int, raw: Path, device: str, workers: int) -> dict:
    """The DataLoader + per-sample transforms + torch.optim loop."""
    import torch
    from torch import nn
    from torchvision import datasets, transforms

    from amsgrad_repro.train.models import build_model

    root = Path(tempfile.mkdtemp(prefix="fmnist-naive-"))
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    for archive in raw.glob("*-ubyte.gz"):  # torchvision reads the decompressed files
        with gzip.open(archive) as src, open(folder / archive.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))]
    )
    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transform)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True
    )
    meta = {"image_shape": [1, 28, 28], "num_classes": 10}
    model = build_model({"arch": model_name}, meta).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    criterion = nn.CrossEntropyLoss()
    running, done, started = 0.0, 0, None
    while done < steps + WARMUP:
        for x, y in loader:
            if done == WARMUP:
                started = time.perf_counter()
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            running += loss.item()
            done += 1
            if done == steps + WARMUP:
                break
    elapsed = time.perf_counter() - started
    shutil.rmtree(root, ignore_errors=True)
    return {"steps": steps, "seconds": elapsed, "final_running_loss": running / done}


def engine(model_name: str, steps: int, cache: Path, device: str) -> dict:
    """The engine's own epoch loop (``Trainer.train_epoch``), whole epochs until at least
    ``steps`` steps; each epoch ends with its log point (one sync, a 128-image eval)."""
    import torch

    from amsgrad_repro.train.engine import RunRequest, Trainer
    from amsgrad_repro.train.progress import Progress

    settings = {
        "kind": "classifier",
        "model": {"arch": model_name},
        "optimizers": ["torch-amsgrad"],
        "hparams": {"lr": 1e-3},
        "batch_size": BATCH,
        "epochs": 1,
        "log_every": 0,  # log (and sync) at epoch ends only
        "subset": {"eval": BATCH},
        "holdout_val": False,
    }
    tmp = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    request = RunRequest("bench", "torch-amsgrad", 0, settings, cache, tmp, tmp, device)
    trainer = Trainer(request)
    per_epoch = trainer.steps_per_epoch
    epochs = math.ceil(steps / per_epoch)
    progress = Progress("bench", epochs * per_epoch + WARMUP, 0, bar=False)
    trainer._started = time.perf_counter()
    trainer.steps_per_epoch = WARMUP
    trainer.train_epoch(progress)  # warm-up
    trainer.steps_per_epoch = per_epoch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(epochs):
        trainer.train_epoch(progress)
    elapsed = time.perf_counter() - started
    shutil.rmtree(tmp, ignore_errors=True)
    loss = trainer.rows[-1]["train_loss"]
    return {"steps": epochs * per_epoch, "seconds": elapsed, "final_running_loss": loss}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.variant == "naive":
        result = naive(args.model, args.naive_steps, args.raw, args.device, args.workers)
    else:
        result = engine(args.model, args.engine_steps, args.cache, args.device)
    result["peak_mb"] = peak_memory_mb(args.device)
    print("RESULT " + json.dumps(result))


def run_child(args: argparse.Namespace, variant: str, model: str) -> dict:
    command = [sys.executable, __file__, "--child", "--variant", variant, "--model", model]
    for key in ("naive_steps", "engine_steps", "threads", "workers", "device", "raw", "cache"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--naive-steps", type=int, default=300)
    parser.add_argument("--engine-steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="naive DataLoader workers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--raw", type=Path, default=RAW_DEFAULT)
    parser.add_argument("--cache", type=Path, default=CACHE_DEFAULT)
    parser.add_argument("--models", nargs="+", default=["logreg", "mlp"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=("naive", "engine"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"device {args.device}, {args.threads} thread(s), batch {BATCH}, "
        f"naive {args.naive_steps} steps (DataLoader workers {args.workers}), "
        f"engine {args.engine_steps} steps, {WARMUP} warm-up steps excluded"
    )
    header = f"{'model':8} {'variant':7} {'steps/s':>9} {'ms/step':>8} {'peak MB':>8}"
    print(header + f" {'speed-up':>9}")
    for model in args.models:
        results = {v: run_child(args, v, model) for v in ("naive", "engine")}
        rates = {v: r["steps"] / r["seconds"] for v, r in results.items()}
        for variant, result in results.items():
            ratio = rates[variant] / rates["naive"]
            print(
                f"{model:8} {variant:7} {rates[variant]:9.1f} {1000 / rates[variant]:8.2f} "
                f"{result['peak_mb']:8.0f} {ratio:8.1f}x"
            )
        if not math.isfinite(results["engine"]["final_running_loss"]):
            raise SystemExit("engine loss is not finite")


if __name__ == "__main__":
    main()
