"""Benchmark: one optimizer step on the MLP's and CIFARNET's parameter lists.

Prints, in one invocation, the time of one step (gradients fixed, so only the update is
timed) for the paper's AMSGrad update on its single-tensor and its multi-tensor path, and
for ``torch.optim.Adam(amsgrad=True, foreach=True)`` on the same parameters, with the ratio
of our multi-tensor step to PyTorch's (the target is at most 1.3x). On CPU here; on CUDA
too when a GPU is present.

    .venv/bin/python benchmarks/optimizer_step.py            # --repeats 300 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from amsgrad_repro.optimizers import BUILTINS
from amsgrad_repro.optimizers.torch_optimizer import build
from amsgrad_repro.train.models import build_model

MODELS = {
    "mlp": ({"arch": "mlp", "hidden": 100}, {"image_shape": [1, 28, 28], "num_classes": 10}),
    "cifarnet": ({"arch": "cifarnet"}, {"image_shape": [3, 32, 32], "num_classes": 10}),
}


def parameters(model: str, device: torch.device) -> list[torch.Tensor]:
    """The model's parameters with fixed random gradients."""
    torch.manual_seed(0)
    params = [
        p.detach().to(device).requires_grad_() for p in build_model(*MODELS[model]).parameters()
    ]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2
    return params


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(optimizer: torch.optim.Optimizer, device: torch.device, repeats: int) -> float:
    """Median seconds per step over ``repeats`` steps, in 5 timed blocks after a warm-up."""
    for _ in range(20):
        optimizer.step()
    synchronize(device)
    blocks = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            optimizer.step()
        synchronize(device)
        blocks.append((time.perf_counter() - started) / repeats)
    return statistics.median(blocks)


def contenders(params: list[torch.Tensor]) -> dict[str, torch.optim.Optimizer]:
    spec = BUILTINS["amsgrad"]
    settings = spec.resolve(("", {"lr": 1e-3, "beta2": 0.999}))
    return {
        "paper AMSGrad, single-tensor": build(spec, params, settings, foreach=False)[0],
        "paper AMSGrad, multi-tensor": build(spec, params, settings, foreach=True)[0],
        "torch.optim.Adam(amsgrad=True, foreach=True)": torch.optim.Adam(
            params, lr=1e-3, betas=(0.9, 0.999), amsgrad=True, foreach=True
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), {args.repeats} steps x 5")
    header = f"{'device':7s} {'model':9s} {'params':>10s} {'update':46s}"
    print(f"{header} {'µs/step':>9s} {'vs torch':>9s}")
    for device in devices:
        for model in MODELS:
            params = parameters(model, device)
            count = sum(p.numel() for p in params)
            times = {
                name: time_steps(opt, device, args.repeats)
                for name, opt in contenders(params).items()
            }
            reference = times["torch.optim.Adam(amsgrad=True, foreach=True)"]
            for name, seconds in times.items():
                print(
                    f"{device.type:7s} {model:9s} {count:10,d} {name:46s} "
                    f"{seconds * 1e6:9.1f} {seconds / reference:8.2f}x"
                )


if __name__ == "__main__":
    main()
