"""Benchmark: would stacking a deep model's seeds pay on a CPU? Issues 19 and 20 ask to
stack (``torch.func``) the seeds of models without BatchNorm or dropout only if it pays;
this measures it for the language model and DeepOBS's two networks that qualify.

Every variant trains ``--members`` copies of one model (``train.models``, each from its own
seed), one step each per iteration, on batches resident in memory, with the same Adam
update (bias-corrected, decoupled decay 0.1, one foreach call over every tensor):

* separate: the copies one after another, each its forward, backward and update (what N
  jobs of one seed do, without the process start-ups, which would only favour stacking);
* stacked: ``torch.func.stack_module_state`` and ``vmap(grad(...))`` over the members,
  one forward and backward for all of them, then the same update on the stacked tensors.

The models: ``gpt`` (quick's 2x4x64 GPT on random windows over 84 symbols),
``fmnist_2c2d`` and ``fmnist_mlp`` (DeepOBS's, batch 128 of random 28x28 images; a step's
time does not depend on the pixels). ``fmnist_vae`` (dropout) and ResNet-20 (BatchNorm)
share randomness or statistics across a batch and are not candidates. The table prints
member-steps per second and the ratio stacked / separate, measured in one run.

    .venv/bin/python benchmarks/stack_seeds.py                          # every model
    .venv/bin/python benchmarks/stack_seeds.py --model gpt --layers 4 --dim 128 \\
        --context 128 --batch 64 --steps 8                              # the LM task's size
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from amsgrad_repro.train.models import build_model

VOCAB = 84
IMAGE = (1, 28, 28)

# One batch per member: (inputs, targets) with a leading member axis.
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Problem:
    """A model of the benchmark: how to build it, draw its batches and score them."""

    batch: int
    spec: Callable[[argparse.Namespace], dict]
    meta: dict
    draw: Callable[[argparse.Namespace, int, torch.Generator], Batch]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gpt_spec(args: argparse.Namespace) -> dict:
    return {
        "arch": "gpt",
        "layers": args.layers,
        "heads": args.heads,
        "dim": args.dim,
        "context": args.context,
    }


def windows(args: argparse.Namespace, batch: int, generator: torch.Generator) -> Batch:
    """[members, batch, context] token windows of one shared stream and their next tokens."""
    stream = torch.randint(0, VOCAB, (200_000,), generator=generator, dtype=torch.uint8)
    starts = torch.randint(
        0, stream.numel() - args.context - 1, (args.members, batch), generator=generator
    )
    tokens = stream[starts[..., None] + torch.arange(args.context + 1)].long()
    return tokens[..., :-1], tokens[..., 1:]


def images(args: argparse.Namespace, batch: int, generator: torch.Generator) -> Batch:
    """[members, batch, 1, 28, 28] images in [0, 1] and their labels."""
    x = torch.rand((args.members, batch, *IMAGE), generator=generator)
    return x, torch.randint(0, 10, (args.members, batch), generator=generator)


def flat_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten())


IMAGE_META = {"image_shape": IMAGE, "num_classes": 10}
PROBLEMS = {
    "gpt": Problem(32, gpt_spec, {"vocab_size": VOCAB}, windows, flat_cross_entropy),
    "fmnist_2c2d": Problem(
        128, lambda _: {"arch": "fmnist_2c2d"}, IMAGE_META, images, flat_cross_entropy
    ),
    "fmnist_mlp": Problem(
        128, lambda _: {"arch": "fmnist_mlp"}, IMAGE_META, images, flat_cross_entropy
    ),
}


def models(problem: Problem, args: argparse.Namespace) -> list[torch.nn.Module]:
    built = []
    for seed in range(args.members):
        torch.manual_seed(seed)
        built.append(build_model(problem.spec(args), problem.meta))
    return built


def adam_update(params: list[torch.Tensor], grads: list[torch.Tensor], state: dict) -> None:
    """Adam with decoupled decay, bias-corrected, as one foreach pass (the same for both)."""
    state["t"] += 1
    t, lr, b1, b2, eps, wd = state["t"], 1e-3, 0.9, 0.99, 1e-8, 0.1
    m, v = (
        state.setdefault("m", [torch.zeros_like(p) for p in params]),
        state.setdefault("v", [torch.zeros_like(p) for p in params]),
    )
    torch._foreach_mul_(params, 1 - lr * wd)
    torch._foreach_lerp_(m, grads, 1 - b1)
    torch._foreach_mul_(v, b2)
    torch._foreach_addcmul_(v, grads, grads, 1 - b2)
    denom = torch._foreach_sqrt(torch._foreach_div(v, 1 - b2**t))
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, m, denom, -lr / (1 - b1**t))


def separate(problem: Problem, args: argparse.Namespace) -> Callable[[Batch], None]:
    members = models(problem, args)
    states = [{"t": 0} for _ in members]

    def step(batch: Batch) -> None:
        for model, state, x, y in zip(members, states, *batch, strict=True):
            params = list(model.parameters())
            grads = torch.autograd.grad(problem.loss(model(x), y), params)
            with torch.no_grad():
                adam_update(params, list(grads), state)

    return step


def stacked(problem: Problem, args: argparse.Namespace) -> Callable[[Batch], None]:
    members = models(problem, args)
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    names = list(params)
    state = {"t": 0}

    def loss_of(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return problem.loss(functional_call(base, (p, b), (x,)), y)

    gradient = vmap(grad(loss_of), in_dims=(0, 0, 0, 0))

    def step(batch: Batch) -> None:
        grads = gradient(params, buffers, *batch)
        with torch.no_grad():
            adam_update([params[n] for n in names], [grads[n] for n in names], state)

    return step


def measure(build: Callable, problem: Problem, args: argparse.Namespace) -> float:
    """Member-steps per second of ``--steps`` timed iterations after 3 warm-up ones."""
    step = build(problem, args)
    generator = torch.Generator().manual_seed(0)
    batch = args.batch or problem.batch
    batches = [problem.draw(args, batch, generator) for _ in range(args.steps + 3)]
    for drawn in batches[:3]:
        step(drawn)
    started = time.perf_counter()
    for drawn in batches[3:]:
        step(drawn)
    return args.members * args.steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        choices=sorted(PROBLEMS),
        action="append",
        help="repeatable; default: every model",
    )
    parser.add_argument("--members", type=int, default=5, help="seeds (min_seeds: 5)")
    parser.add_argument("--layers", type=int, default=2, help="gpt")
    parser.add_argument("--heads", type=int, default=4, help="gpt")
    parser.add_argument("--dim", type=int, default=64, help="gpt")
    parser.add_argument("--context", type=int, default=64, help="gpt")
    parser.add_argument("--batch", type=int, help="default: 32 windows, 128 images")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.members} members, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'model':12} {'variant':9} {'member-steps/s':>14} {'ms each':>8} {'ratio':>6}")
    for name in args.model or list(PROBLEMS):
        problem = PROBLEMS[name]
        rates = {
            "separate": measure(separate, problem, args),
            "stacked": measure(stacked, problem, args),
        }
        for variant, rate in rates.items():
            ratio = rate / rates["separate"]
            print(f"{name:12} {variant:9} {rate:14.2f} {1000 / rate:8.1f} {ratio:5.2f}x")


if __name__ == "__main__":
    main()
