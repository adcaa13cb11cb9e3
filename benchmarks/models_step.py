"""Benchmark: training steps per second of CIFARNET and the VAEs (batch 128).

One step is what the engine does per iteration: gather a batch by index from the uint8
dataset resident on the device, convert/standardise it on the device, forward, loss,
backward and an optimizer step (the paper's AMSGrad). Data are random uint8 images of the
real shapes, so no dataset is needed; the time per step does not depend on pixel values.

    .venv/bin/python benchmarks/models_step.py                       # CPU, all models
    .venv/bin/python benchmarks/models_step.py --models cifarnet --steps 20
    .venv/bin/python benchmarks/models_step.py --device cuda --channels-last --tf32 --compile

Prints parameter count, steps/s, ms/step and images/s per model, and peak memory (CUDA
allocator peak on a GPU, process max RSS on CPU).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from amsgrad_repro.optimizers.torch_optimizer import build_named
from amsgrad_repro.train.models.cifarnet import CifarNet, PixelStandardizer
from amsgrad_repro.train.models.vae import ConvVAE, VaeSpec, count_parameters, negative_elbo

MODELS = ("cifarnet", "vae_mnist", "vae_celeba")
SHAPES = {"cifarnet": (3, 32, 32), "vae_mnist": (1, 28, 28), "vae_celeba": (3, 64, 64)}


def make_step(name: str, args: argparse.Namespace) -> tuple[Callable[[], None], int]:
    """A closure running one training step, and the model's parameter count."""
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    shape = SHAPES[name]
    data = torch.randint(0, 256, (args.pool, *shape), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (args.pool,), device=device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    if name == "cifarnet":
        model = CifarNet().to(device, memory_format=fmt)
        prepare = PixelStandardizer(data)
        hparams = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999}

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            x = prepare(data[index]).contiguous(memory_format=fmt)
            return F.cross_entropy(forward(x), labels[index])

    else:
        spec = VaeSpec.from_settings({"size": name.split("_")[1]}, shape)
        model = ConvVAE(spec).to(device, memory_format=fmt)
        hparams = {"lr": 2e-3, "lr_schedule": "inv_sqrt", "beta1": 0.5, "beta2": 0.999}

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            x = (data[index].float() / 255.0).contiguous(memory_format=fmt)
            noise = torch.randn(len(index), spec.latent, generator=gen, device=device)
            logits, mu, logvar = forward(x, noise)
            return negative_elbo(logits, x, mu, logvar).loss

    forward = torch.compile(model) if args.compile else model
    model.train()
    optimizer, scheduler = build_named("amsgrad", model.parameters(), hparams)

    def step() -> None:
        index = torch.randint(0, args.pool, (args.batch,), generator=gen, device=device)
        optimizer.zero_grad(set_to_none=True)
        loss_of(index).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    return step, count_parameters(model)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    step, params = make_step(name, args)
    for _ in range(args.warmup):
        step()
    sync(args.device)
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(args.device)
    elapsed = time.perf_counter() - started
    return {"params": params, "steps_per_s": args.steps / elapsed, "elapsed": elapsed}


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pool", type=int, default=1024, help="images resident on the device")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convolutions")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    print(
        f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"batch {args.batch}, channels_last {args.channels_last}, tf32 {args.tf32}, "
        f"compile {args.compile}"
    )
    print(f"{'model':12s} {'params':>10s} {'steps/s':>9s} {'ms/step':>9s} {'images/s':>9s}")
    for name in args.models:
        row = measure(name, args)
        rate = row["steps_per_s"]
        print(
            f"{name:12s} {row['params']:>10,d} {rate:>9.2f} {1000 / rate:>9.1f} "
            f"{rate * args.batch:>9.0f}"
        )
    print(f"peak memory: {peak_memory_mb(args.device):.0f} MiB")


if __name__ == "__main__":
    main()
