"""Give concurrent local training jobs distinct GPUs, and record the scheduler's allocation.

Snakemake's local executor limits how many jobs hold a ``gpu`` resource at once
(``--resources gpu=N``) but does not say *which* GPU a job should use: every job would
see all devices and PyTorch would put them all on GPU 0. SLURM, in contrast, sets
``CUDA_VISIBLE_DEVICES`` for each job from its GRES allocation.

So a training job that finds no ``CUDA_VISIBLE_DEVICES`` and several GPUs claims one
with an exclusive ``flock`` on a per-GPU lock file and narrows ``CUDA_VISIBLE_DEVICES``
to it before CUDA starts. The kernel drops the lock when the process exits, however it
exits, so a killed job never leaves a GPU marked busy.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path
from typing import IO, Any

from amsgrad_repro import layout

DEVICE_DIR = Path("/dev")
LOCK_DIR = Path(layout.GPU_LOCKS)
SCHEDULER_VARIABLES = (
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_JOB_PARTITION",
    "SLURM_JOB_NODELIST",
    "SLURM_JOB_GPUS",
    "SLURM_GPUS_ON_NODE",
    "SLURM_CPUS_PER_TASK",
    "SLURM_RESTART_COUNT",
    "CUDA_VISIBLE_DEVICES",
)

# Held for the life of the process: closing the file would release the GPU.
_held_lock: IO[Any] | None = None


def count_gpus(device_dir: Path = DEVICE_DIR) -> int:
    """NVIDIA GPUs on this machine, from their device files (``/dev/nvidia0``, ...).

    Read from the file system rather than from PyTorch, because asking CUDA would fix the
    visible devices before this module could narrow them.
    """
    return sum(1 for path in device_dir.glob("nvidia*") if re.fullmatch(r"nvidia\d+", path.name))


def claim_gpu(
    device_dir: Path = DEVICE_DIR,
    lock_dir: Path = LOCK_DIR,
    timeout: float = 3600.0,
    environ: dict[str, str] | None = None,
) -> int | None:
    """Claim a free GPU for this process and make it the only one CUDA sees.

    Returns the claimed index, or None when there is nothing to choose: a scheduler (or
    the user) already set ``CUDA_VISIBLE_DEVICES``, or the machine has fewer than two
    GPUs. Waits while all GPUs are held (more jobs than ``--resources gpu=N`` allows
    should not happen, but a second Snakemake in the same folder could do it).
    """
    global _held_lock
    env = os.environ if environ is None else environ
    total = count_gpus(device_dir)
    if "CUDA_VISIBLE_DEVICES" in env or total < 2:
        return None
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for index in range(total):
            handle = open(lock_dir / f"gpu{index}.lock", "a+")  # noqa: SIM115 - held open
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_lock = handle
            env["CUDA_VISIBLE_DEVICES"] = str(index)
            return index
        if time.monotonic() > deadline:
            raise TimeoutError(f"all {total} GPUs stayed busy for {timeout:.0f} s ({lock_dir})")
        time.sleep(1.0)


def scheduler_record(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The scheduler's view of this job, for run.json: under SLURM the job id and its
    GPU allocation, which a test (and a reader) uses to see where the run happened."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in SCHEDULER_VARIABLES if name in env}
