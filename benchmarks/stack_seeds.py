"""Benchmark: would stacking the language model's seeds pay on a CPU? Issue 20 asks to stack
(``torch.func``) only if it does; this measures it.

Both variants train ``--members`` copies of the same GPT (``train.models`` ``gpt``, each
from its own seed) on random windows of one resident uint8 token stream, one step each per
iteration, with the same Adam update (decoupled decay 0.1, one foreach call over every
tensor):

* separate: the copies one after another, each its forward, backward and update (what N
  jobs of one seed do, without the process start-ups, which would only favour stacking);
* stacked: ``torch.func.stack_module_state`` and ``vmap(grad(...))`` over the members,
  one forward and backward for all of them, then the same update on the stacked tensors.

Random tokens over 84 symbols: a step's time does not depend on the text. The table
prints member-steps per second and the ratio stacked / separate, measured in one run.

    .venv/bin/python benchmarks/lm_stack.py                    # quick's 2x4x64 model
    .venv/bin/python benchmarks/lm_stack.py --layers 4 --dim 128 --context 128 --batch 64
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from amsgrad_repro.train.models import build_model

VOCAB = 84


def models(args: argparse.Namespace) -> list[torch.nn.Module]:
    spec = {"arch": "gpt", "layers": args.layers, "heads": args.heads, "dim": args.dim}
    built = []
    for seed in range(args.members):
        torch.manual_seed(seed)
        built.append(build_model({**spec, "context": args.context}, {"vocab_size": VOCAB}))
    return built


def windows(args: argparse.Namespace, generator: torch.Generator) -> torch.Tensor:
    """[members, batch, context + 1] token windows of the shared stream."""
    stream = torch.randint(0, VOCAB, (200_000,), generator=generator, dtype=torch.uint8)
    starts = torch.randint(
        0, stream.numel() - args.context - 1, (args.members, args.batch), generator=generator
    )
    return stream[starts[..., None] + torch.arange(args.context + 1)].long()


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


def separate(args: argparse.Namespace) -> Callable[[torch.Tensor], None]:
    members = models(args)
    states = [{"t": 0} for _ in members]

    def step(batch: torch.Tensor) -> None:
        for model, state, block in zip(members, states, batch, strict=True):
            logits = model(block[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), block[:, 1:].flatten())
            params = list(model.parameters())
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                adam_update(params, list(grads), state)

    return step


def stacked(args: argparse.Namespace) -> Callable[[torch.Tensor], None]:
    members = models(args)
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    names = list(params)
    state = {"t": 0}

    def loss_of(p: dict, b: dict, block: torch.Tensor) -> torch.Tensor:
        logits = functional_call(base, (p, b), (block[:, :-1],))
        return F.cross_entropy(logits.flatten(0, 1), block[:, 1:].flatten())

    gradient = vmap(grad(loss_of), in_dims=(0, 0, 0))

    def step(batch: torch.Tensor) -> None:
        grads = gradient(params, buffers, batch)
        with torch.no_grad():
            adam_update([params[n] for n in names], [grads[n] for n in names], state)

    return step


def measure(build: Callable, args: argparse.Namespace) -> float:
    """Member-steps per second of ``--steps`` timed iterations after 3 warm-up ones."""
    step = build(args)
    generator = torch.Generator().manual_seed(0)
    batches = [windows(args, generator) for _ in range(args.steps + 3)]
    for batch in batches[:3]:
        step(batch)
    started = time.perf_counter()
    for batch in batches[3:]:
        step(batch)
    return args.members * args.steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5, help="seeds (min_seeds: 5)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"GPT {args.layers}x{args.heads}x{args.dim}, context {args.context}, batch "
        f"{args.batch}, {args.members} members, {args.threads} thread(s), torch {torch.__version__}"
    )
    rates = {"separate": measure(separate, args), "stacked": measure(stacked, args)}
    for name, rate in rates.items():
        ratio = rate / rates["separate"]
        print(f"{name:9} {rate:8.2f} member-steps/s {1000 / rate:8.1f} ms each {ratio:6.2f}x")


if __name__ == "__main__":
    main()
