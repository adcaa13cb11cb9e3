"""Benchmark: seeds trained as one stacked job against separate runs.

Prints, in one invocation:

1. per-member training steps/s for 10 seeds of logistic regression and of the MLP on
   Fashion-MNIST: ten separate engine runs in one process (``train.engine.Trainer``) vs one
   stacked job (``train.stacked``), their ratio, and each variant's peak memory (each runs in
   its own process, so its peak RSS is its own); on CUDA too when a GPU is present;
2. for members sharing a batch (a tuning grid's points on one seed): the MLP's layers as one
   batched product per member (what the stacked job does) vs one wider matrix product for
   all members (concatenated weights), forward + backward;
3. the wall time of the quick preset's logistic-regression + MLP training stage through
   Snakemake, one job per seed (``stack: none``) vs stacked jobs, in scratch copies of the
   workflow on this machine (``--optimizers`` and ``--epochs`` say which part of it).

    .venv/bin/python benchmarks/stacked.py                       # both parts
    .venv/bin/python benchmarks/stacked.py --skip-pipeline       # part 1 only

Needs the Fashion-MNIST cache (``snakemake --cores 1 data/cache/fashion_mnist.pt``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "data" / "cache" / "fashion_mnist.pt"
PAPER_FORMS = ["adam", "amsgrad", "adamnc", "torch-adam", "torch-amsgrad"]


def settings(arch: str, steps: int) -> dict:
    return {
        "kind": "classifier",
        "dataset": "fashion_mnist",
        "model": {"arch": arch, **({"hidden": 100} if arch == "mlp" else {})},
        "optimizers": ["amsgrad"],
        "hparams": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999},
        "batch_size": 128,
        "epochs": 1,
        "log_every": 0,
        "subset": {"train": 128 * steps, "eval": 128},
        "holdout_val": True,
    }


def worker(variant: str, arch: str, members: int, steps: int, device: str) -> dict:
    """Train ``members`` seeds the ``variant`` way; returns training steps/s per member."""
    import torch

    from amsgrad_repro.train.engine import RunRequest, train
    from amsgrad_repro.train.stacked import Member, StackedRequest, train_stacked

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="stacked-bench-"))
    task = settings(arch, steps)
    started = time.perf_counter()
    if variant == "separate":
        for seed in range(members):
            out = root / str(seed)
            train(RunRequest("bench", "amsgrad", seed, task, CACHE, out, out / "c", device))
    else:
        group = [Member(seed, root / str(seed)) for seed in range(members)]
        train_stacked(StackedRequest("bench", "amsgrad", group, task, CACHE, root / "c", device))
    wall = time.perf_counter() - started
    shutil.rmtree(root)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"per_member_steps_s": steps * members / wall, "wall_s": wall, "peak_mb": peak}


def measure(variant: str, arch: str, members: int, steps: int, device: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--arch",
        arch,
        "--members",
        str(members),
        "--steps",
        str(steps),
        "--device",
        device,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def engine_table(members: int, steps: int) -> None:
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"1. {members} seeds, {steps} training steps each, batch 128, one CPU thread")
    print(
        f"{'device':6s} {'model':7s} {'separate':>16s} {'stacked':>16s} {'ratio':>7s} "
        f"{'peak MB sep/stk':>16s}"
    )
    for device in devices:
        for arch in ("logreg", "mlp"):
            sep = measure("separate", arch, members, steps, device)
            stk = measure("stacked", arch, members, steps, device)
            ratio = stk["per_member_steps_s"] / sep["per_member_steps_s"]
            print(
                f"{device:6s} {arch:7s} {sep['per_member_steps_s']:12.0f} st/s "
                f"{stk['per_member_steps_s']:12.0f} st/s {ratio:6.2f}x "
                f"{sep['peak_mb']:7.0f}/{stk['peak_mb']:.0f}"
            )
    if len(devices) == 1:
        print("   (no CUDA device here: GPU figures not measured)")


def shared_batch_table(members: int, repeats: int = 200) -> None:
    """Members fed the same batch: bmm over members vs one product of width M·out."""
    import torch

    torch.set_num_threads(1)
    x = torch.rand(128, 784)
    sizes = [(784, 100), (100, 10)]
    stacked = [torch.randn(members, i, o, requires_grad=True) for i, o in sizes]
    wide = [torch.randn(i, members * o, requires_grad=True) for i, o in sizes[:1]]
    second = torch.randn(members, 100, 10, requires_grad=True)

    def batched() -> None:
        h = torch.relu(torch.matmul(x, stacked[0]))  # [M, B, 100]
        torch.bmm(h, stacked[1]).sum().backward()

    def widened() -> None:
        h = torch.relu(x @ wide[0]).view(128, members, 100).transpose(0, 1)
        torch.bmm(h, second).sum().backward()

    for name, step in (("batched per member", batched), ("one wide product", widened)):
        step()
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        print(f"   {name:20s} {(time.perf_counter() - started) / repeats * 1e3:7.2f} ms/step")


def pipeline_time(stack: str, optimizers: list[str], epochs: int) -> tuple[float, int]:
    """Wall time of the quick preset's logreg + MLP runs through Snakemake."""
    work = Path(tempfile.mkdtemp(prefix=f"stage-{stack}-"))
    for name in ("Snakefile", "config.yaml", "workflow", "envs"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, work / name)
    (work / "data" / "cache").mkdir(parents=True)
    os.symlink(CACHE, work / "data" / "cache" / CACHE.name)
    config = yaml.safe_load((work / "config.yaml").read_text())
    seeds = config["presets"]["quick"]["seeds"]
    targets = [
        f"results/runs/{t}/{o}/{s}/run.json"
        for t in ("logreg", "mlp")
        for o in optimizers
        for s in range(seeds)
    ]
    overrides = ", ".join(
        f"{t}: {{stack: {stack}, epochs: {epochs}, optimizers: [{', '.join(optimizers)}]}}"
        for t in ("logreg", "mlp")
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            str(os.cpu_count()),
            "--quiet",
            "all",
            "--config",
            "scale=quick",
            f"tasks={{{overrides}}}",
            "--",
            *targets,
        ],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    jobs = len(list((work / "results" / "benchmarks" / "train").rglob("*.tsv")))
    shutil.rmtree(work)
    return wall, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["separate", "stacked"])
    parser.add_argument("--arch", default="logreg")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--optimizers", nargs="+", default=PAPER_FORMS)
    parser.add_argument("--epochs", type=int, default=5, help="the quick preset's")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.arch, args.members, args.steps, args.device)))
        return
    if not CACHE.exists():
        sys.exit(f"{CACHE} missing: run `snakemake --cores 1 {CACHE.relative_to(REPO)}` first")
    engine_table(args.members, args.steps)
    shared_batch_table(args.members)
    if args.skip_pipeline:
        return
    print(
        f"\n2. quick preset, logreg + MLP, {args.epochs} epochs, optimizers "
        f"{' '.join(args.optimizers)}, {os.cpu_count()} cores"
    )
    per_seed, per_seed_jobs = pipeline_time("none", args.optimizers, args.epochs)
    stacked, stacked_jobs = pipeline_time("seeds", args.optimizers, args.epochs)
    print(f"   one job per seed: {per_seed / 60:6.1f} min ({per_seed_jobs} jobs)")
    print(
        f"   stacked jobs:     {stacked / 60:6.1f} min ({stacked_jobs} jobs), "
        f"{per_seed / stacked:.1f}x less wall time"
    )


if __name__ == "__main__":
    main()
