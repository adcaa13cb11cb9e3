"""Local multi-GPU runs: concurrent training jobs claim distinct GPUs (amsgrad_repro.gpus).

Real GPUs are not needed: the claim reads device files and takes file locks, so a folder
of stand-in ``nvidia<N>`` files and several processes exercise it for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from amsgrad_repro.gpus import claim_gpu, count_gpus, scheduler_record

CLAIM_AND_HOLD = """
import sys, time
from pathlib import Path
from amsgrad_repro.gpus import claim_gpu
env = {}
index = claim_gpu(Path(sys.argv[1]), Path(sys.argv[2]), timeout=30, environ=env)
print(index, env["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(float(sys.argv[3]))
"""


def fake_devices(folder: Path, count: int) -> Path:
    folder.mkdir()
    for index in range(count):
        (folder / f"nvidia{index}").touch()
    # Not GPUs: the control and UVM devices sit beside them on a real machine.
    (folder / "nvidiactl").touch()
    (folder / "nvidia-uvm").touch()
    return folder


def holder(devices: Path, locks: Path, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HOLD, str(devices), str(locks), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_counts_only_numbered_gpu_devices(tmp_path):
    assert count_gpus(fake_devices(tmp_path / "dev", 3)) == 3


def test_concurrent_jobs_get_distinct_gpus_and_a_finished_job_frees_its_gpu(tmp_path):
    devices, locks = fake_devices(tmp_path / "dev", 2), tmp_path / "locks"
    first, second = holder(devices, locks, 3), holder(devices, locks, 3)
    claims = {first.stdout.readline().split()[0], second.stdout.readline().split()[0]}
    assert claims == {"0", "1"}
    # A third job waits for a GPU, and gets the one the first job releases.
    third = holder(devices, locks, 0)
    first.wait(timeout=30)
    released = third.stdout.readline().split()
    assert released[0] in {"0", "1"} and released[0] == released[1]
    for process in (second, third):
        process.wait(timeout=30)


def test_a_scheduler_allocation_or_a_single_gpu_is_left_alone(tmp_path):
    locks = tmp_path / "locks"
    env = {"CUDA_VISIBLE_DEVICES": "3"}
    assert claim_gpu(fake_devices(tmp_path / "two", 2), locks, environ=env) is None
    assert env == {"CUDA_VISIBLE_DEVICES": "3"}
    env = {}
    assert claim_gpu(fake_devices(tmp_path / "one", 1), locks, environ=env) is None
    assert env == {}


def test_scheduler_record_keeps_only_the_job_and_gpu_variables():
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_GPUS": "1", "HOME": "/root", "PATH": "/bin"}
    assert scheduler_record(env) == {"SLURM_JOB_ID": "42", "SLURM_JOB_GPUS": "1"}
