"""``amsgrad-repro train`` (one task × optimizer × seed, as the Snakemake rule runs it) and
``amsgrad-repro train-figure`` (the task's loss curves from its aggregate) and
``amsgrad-repro samples-figure`` (the per-run samples of a task side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from amsgrad_repro.cli import json_arg
from amsgrad_repro.gpus import claim_gpu
from amsgrad_repro.layout import RUN_CHECKPOINTS
from amsgrad_repro.settings_base import ConfigError
from amsgrad_repro.train.progress import interactive
from amsgrad_repro.tuning.grid import apply_selection


def register(subparsers: argparse._SubParsersAction) -> None:

    parser = subparsers.add_parser(
        "train",
        help="train one task with one optimizer and seed",
        description="Train one task x optimizer x seed; resumes from its checkpoint.",
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--optimizer", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--settings", type=json_arg, required=True, help="the task's JSON")
    parser.add_argument("--plugins", type=json_arg, default={}, help="plug-in declarations")
    parser.add_argument("--dataset-cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--hparams-file",
        type=Path,
        default=None,
        help="tuning selection (results/tuning/<task>/<opt>.json): its α and β2 replace the"
        " configured ones for this optimizer",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="resumable checkpoint folder (default results/checkpoints/<task>/<opt>/<seed>)",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=0.0,
        help="seconds to wait for another trainer of the same run (default: stop at once)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar: auto shows it when stderr is a terminal",
    )
    parser.set_defaults(func=run)
    _register_stacked(subparsers, json_arg)
    _register_figure(subparsers, json_arg)


def _register_stacked(subparsers: argparse._SubParsersAction, json_arg) -> None:
    parser = subparsers.add_parser(
        "train-stacked",
        help="train several seeds (or tuning points) of one task x optimizer as one model",
        description="Train the members of one stacked job; resumes from its checkpoint.",
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--optimizer", required=True)
    parser.add_argument(
        "--members",
        type=json_arg,
        required=True,
        help='[{"seed": 0, "out": "results/runs/...", "hparams": {...}}, ...]',
    )
    parser.add_argument("--settings", type=json_arg, required=True, help="the task's JSON")
    parser.add_argument("--plugins", type=json_arg, default={}, help="plug-in declarations")
    parser.add_argument("--hparams-file", type=Path, default=None, help="tuning selection")
    parser.add_argument("--dataset-cache", type=Path, required=True)
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=0.0,
        help="seconds to wait for another trainer of this job (default: stop)",
    )
    parser.set_defaults(func=run_stacked)


def run_stacked(args: argparse.Namespace) -> int:

    if args.device in ("auto", "cuda"):
        claim_gpu()
    import torch

    # here, not at the top: it loads torch
    from amsgrad_repro.train.stacked import Member, StackedRequest, train_stacked

    settings = _job_settings(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    members = [Member(int(m["seed"]), Path(m["out"]), m.get("hparams") or {}) for m in args.members]
    request = StackedRequest(
        task=args.task,
        optimizer=args.optimizer,
        members=members,
        settings=settings,
        dataset_cache=args.dataset_cache,
        checkpoint_dir=args.checkpoint_dir,
        device=args.device,
        progress_bar=args.progress == "on" or (args.progress == "auto" and interactive()),
        plugins=args.plugins,
        lock_wait_s=args.lock_wait,
    )
    for record in train_stacked(request):
        final = " ".join(f"{k} {v:.4g}" for k, v in record["final"].items())
        print(f"{args.task}/{args.optimizer}/{record['seed']}: {record['status']} | {final}")
    return 0


def _job_settings(args: argparse.Namespace) -> dict:
    """The task's settings for this optimizer, with a tuning selection applied."""
    if args.optimizer not in args.settings.get("optimizers", [args.optimizer]):
        raise ConfigError(f"optimizer {args.optimizer!r} is not listed for task {args.task!r}")
    if args.hparams_file is None:
        return args.settings

    return apply_selection(args.settings, args.optimizer, args.hparams_file)


def _register_figure(subparsers: argparse._SubParsersAction, json_arg) -> None:
    parser = subparsers.add_parser(
        "train-figure",
        help="train/test loss curves of a training task (mean and 95%% band over seeds)",
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--aggregate", type=Path, required=True)
    parser.add_argument("--settings", type=json_arg, required=True, help="the task's JSON")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run.json files")
    parser.add_argument("--log-y", action="store_true")
    parser.add_argument("--out", type=Path, nargs="+", required=True, help="PNG and/or PDF")
    parser.set_defaults(func=figure)
    parser = subparsers.add_parser(
        "samples-figure",
        help="the samples of a task's final models, first seed of each optimizer",
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--settings", type=json_arg, required=True, help="the task's JSON")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run.json files")
    parser.add_argument("--out", type=Path, nargs="+", required=True, help="PNG and/or PDF")
    parser.set_defaults(func=samples)


def samples(args: argparse.Namespace) -> int:
    # here, not at the top: it loads matplotlib, pandas, seaborn
    from amsgrad_repro.train.figure import samples_figure

    samples_figure(args.task, args.settings, args.runs, args.out)
    return 0


def figure(args: argparse.Namespace) -> int:
    # here, not at the top: it loads matplotlib, pandas, seaborn
    from amsgrad_repro.train.figure import training_figure

    training_figure(args.task, args.aggregate, args.settings, args.runs, args.out, args.log_y)
    return 0


def run(args: argparse.Namespace) -> int:

    # Set first: an interrupted run names its checkpoint (amsgrad_repro.supervision).
    args.checkpoint_dir = args.checkpoint_dir or Path(
        RUN_CHECKPOINTS.build(task=args.task, optimizer=args.optimizer, seed=args.seed)
    )

    if args.device in ("auto", "cuda"):
        # Before CUDA starts: on a multi-GPU machine, concurrent jobs get distinct GPUs.
        claim_gpu()
    import torch

    # here, not at the top: it loads torch
    from amsgrad_repro.train.engine import RunRequest, train

    args.settings = _job_settings(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    request = RunRequest(
        task=args.task,
        optimizer=args.optimizer,
        seed=args.seed,
        settings=args.settings,
        dataset_cache=args.dataset_cache,
        out_dir=args.out,
        checkpoint_dir=args.checkpoint_dir,
        device=args.device,
        progress_bar=args.progress == "on" or (args.progress == "auto" and interactive()),
        plugins=args.plugins,
        lock_wait_s=args.lock_wait,
    )
    record = train(request)
    final = " ".join(f"{k} {v:.4g}" for k, v in record["final"].items())
    print(f"{args.task}/{args.optimizer}/{args.seed}: {record['status']} | {final}", flush=True)
    return 0
