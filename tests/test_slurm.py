"""The cluster profile on a real SLURM controller (issue 7).

A one-node cluster (munged, slurmctld, slurmd from Debian's packages) with two fake GPUs
(character devices made with mknod) runs a smoke pipeline through
``workflow/profiles/slurm`` and the Snakemake SLURM executor plugin: the synthetic runs
grouped into few submissions, every training job a SLURM job holding one GPU. The same
targets run locally and the results must be equal.

Skips with the reason on a machine without SLURM or root; in CI (``CI=true``) it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.miniatures import write_idx_dataset
from tests.pipeline import copy_workflow, make_project, snakemake_env
from tests.slurm.cluster import SlurmCluster, slurm_available

UNAVAILABLE = slurm_available()
if UNAVAILABLE and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the SLURM test: {UNAVAILABLE} (see .ci/run)")
pytestmark = [
    pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE)),
    pytest.mark.slow,
]

OPTIMIZERS = ["adam", "amsgrad"]
SEEDS = 2
# Long enough (a few seconds) that the test can preempt this job in the middle.
EPOCHS = 60
PREEMPTED = ("amsgrad", 1)
# Columns that depend on the machine's speed, not on the computation.
TIMING_COLUMNS = {"wall_time"}


def scratch_workflow(root: Path, mini: dict) -> Path:
    """A workflow copy (git + DVC repo) on a miniature Fashion-MNIST, logreg with two
    optimizers, the synthetic problems at smoke length."""
    workdir = copy_workflow(root)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["fashion_mnist"] = mini
    config["tasks"]["logreg"]["optimizers"] = OPTIMIZERS
    config["presets"]["smoke"]["tasks"]["logreg"]["epochs"] = EPOCHS
    return make_project(workdir, config)


def targets() -> list[str]:
    runs = [
        f"results/runs/logreg/{optimizer}/{seed}/metrics.csv"
        for optimizer in OPTIMIZERS
        for seed in range(SEEDS)
    ]
    return runs + ["results/figures/figure1.png", "results/figures/logreg.png"]


def snakemake_command(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        *targets(),
        *args,
        "--config",
        "scale=smoke",
        f"seeds={SEEDS}",
    ]


def run_with_preemption(workdir: Path, cluster: SlurmCluster, *args: str) -> str:
    """Run the pipeline on SLURM and, once one training job has checkpointed an epoch,
    requeue it as a preempting scheduler would (kill, back to the queue). Returns the
    requeued SLURM job id."""
    optimizer, seed = PREEMPTED
    # Logistic regression trains its seeds as one stacked job per optimizer.
    checkpoint = workdir / f"results/checkpoints/logreg/{optimizer}/stacked/last.pt"
    comment = f"rule_train_stacked_logreg_{optimizer}"
    log = (workdir / "snakemake-slurm.log").open("w")
    process = subprocess.Popen(
        snakemake_command(*args),
        cwd=workdir,
        env=cluster.env(snakemake_env()),
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 600
        while not checkpoint.exists():
            assert process.poll() is None, "the pipeline ended before the job checkpointed"
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.1)
        job_id = cluster.job_with_comment(comment)
        cluster.scontrol("requeue", job_id)
        process.wait(timeout=1200)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    output = (workdir / "snakemake-slurm.log").read_text()
    assert process.returncode == 0, f"pipeline on SLURM failed:\n{output[-8000:]}"
    return job_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("slurm")
    mini = write_idx_dataset(root / "mini", num_train=1200, num_test=600)
    on_slurm = scratch_workflow(root / "on_slurm", mini)
    local = scratch_workflow(root / "local", mini)
    # The local run overlaps the SLURM one: that one mostly waits (cluster start-up, the
    # executor's status polls, which back off by 10 s each time nothing has finished).
    local_log = (local / "snakemake-local.log").open("w")
    local_run = subprocess.Popen(
        snakemake_command("--cores", "2"),
        cwd=local,
        env=snakemake_env(),
        stdout=local_log,
        stderr=subprocess.STDOUT,
    )
    try:
        on_slurm_run(on_slurm, cluster_root=root / "cluster")
        local_run.wait(timeout=1200)
    finally:
        if local_run.poll() is None:
            local_run.kill()
            local_run.wait()
        local_log.close()
    output = (local / "snakemake-local.log").read_text()
    assert local_run.returncode == 0, f"the local run failed:\n{output[-8000:]}"
    return {"slurm": on_slurm, "local": local}


def on_slurm_run(on_slurm: Path, cluster_root: Path) -> None:
    """The pipeline on a fresh cluster with one job preempted; what the tests read of the
    cluster (the preempted job's id, every job's allocation) is saved before it stops."""
    with SlurmCluster(cluster_root) as cluster:
        profile = str(on_slurm / "workflow" / "profiles" / "slurm")
        # --cores: the node has 2 CPUs, so a group job runs its members 2 at a time.
        preempted = run_with_preemption(
            on_slurm, cluster, "--workflow-profile", profile, "--slurm-no-account", "--cores", "2"
        )
        (on_slurm / "preempted-job").write_text(preempted)
        jobs = {
            job_id: cluster.scontrol("--details", "show", "job", job_id)
            for job_id in slurm_job_ids(on_slurm)
        }
        (on_slurm / "slurm-jobs.json").write_text(json.dumps(jobs))


def run_records(workdir: Path, task_glob: str) -> dict[str, dict]:
    return {
        str(path.relative_to(workdir / "results/runs").parent): json.loads(path.read_text())
        for path in sorted((workdir / "results/runs").glob(f"{task_glob}/*/*/run.json"))
    }


def slurm_job_ids(workdir: Path) -> set[str]:
    return {
        record["scheduler"]["SLURM_JOB_ID"]
        for record in run_records(workdir, "*").values()
        if "SLURM_JOB_ID" in record.get("scheduler", {})
    }


def test_every_training_job_ran_on_slurm_with_one_gpu(runs):
    records = run_records(runs["slurm"], "logreg")
    assert len(records) == len(OPTIMIZERS) * SEEDS
    jobs = json.loads((runs["slurm"] / "slurm-jobs.json").read_text())
    for name, record in records.items():
        scheduler = record["scheduler"]
        assert "SLURM_JOB_ID" in scheduler, f"{name} did not run as a SLURM job"
        # SLURM narrowed the job to exactly one of the node's two fake GPUs.
        assert scheduler["CUDA_VISIBLE_DEVICES"] in {"0", "1"}, name
        allocation = jobs[scheduler["SLURM_JOB_ID"]]
        assert "JOB_GRES=gpu:fake:1" in allocation, allocation
        assert record["status"] == "completed"
    # One submission per training job: a stacked job per optimizer, all its seeds.
    by_optimizer = {}
    for record in records.values():
        by_optimizer.setdefault(record["optimizer"], set()).add(record["scheduler"]["SLURM_JOB_ID"])
    assert all(len(ids) == 1 for ids in by_optimizer.values()), by_optimizer
    assert len(set.union(*by_optimizer.values())) == len(OPTIMIZERS)


def test_synthetic_runs_are_grouped_into_few_submissions(runs):
    records = run_records(runs["slurm"], "synthetic_*")
    assert records, "no synthetic runs"
    job_ids = {r.get("scheduler", {}).get("SLURM_JOB_ID") for r in records.values()}
    assert None not in job_ids, "a synthetic run did not run as a SLURM job"
    # 12 problem x optimizer jobs (each computing all seeds) in far fewer submissions.
    problem_optimizer_jobs = {name.rsplit("/", 1)[0] for name in records}
    assert len(job_ids) < len(problem_optimizer_jobs)
    jobs = json.loads((runs["slurm"] / "slurm-jobs.json").read_text())
    for job_id in job_ids:
        assert "JOB_GRES=(null)" in jobs[job_id], "a CPU-only group job was given a GPU"


def test_results_equal_a_local_run(runs):
    slurm_runs = sorted((runs["slurm"] / "results/runs").glob("*/*/*/metrics.csv"))
    local_runs = sorted((runs["local"] / "results/runs").glob("*/*/*/metrics.csv"))
    relative = [p.relative_to(runs["slurm"]) for p in slurm_runs]
    assert relative == [p.relative_to(runs["local"]) for p in local_runs]
    for path in relative:
        on_slurm = pd.read_csv(runs["slurm"] / path)
        local = pd.read_csv(runs["local"] / path)
        columns = [c for c in local.columns if c not in TIMING_COLUMNS]
        pd.testing.assert_frame_equal(on_slurm[columns], local[columns], check_exact=True)
    for name in ("figure1.png", "logreg.png"):
        assert (runs["slurm"] / "results/figures" / name).stat().st_size > 1000


def test_the_cluster_is_stopped(runs):
    """No daemon of the cluster still runs. A zombie does not count: the daemons fork
    themselves into the background, so once they exit their parent is init, which reaps
    them when it gets to it (up to a few seconds on these machines)."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,stat=,comm="], capture_output=True, text=True, check=True
    ).stdout
    for daemon in ("slurmctld", "slurmd"):
        running = [
            line.split()[0]
            for line in listing.splitlines()
            if line.split()[2:] == [daemon] and not line.split()[1].startswith("Z")
        ]
        assert not running, f"{daemon} still running: {running}"


def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(runs):
    optimizer, seed = PREEMPTED
    record = run_records(runs["slurm"], "logreg")[f"logreg/{optimizer}/{seed}"]
    preempted = (runs["slurm"] / "preempted-job").read_text()
    # The same SLURM job, started again by the scheduler, continued after an epoch.
    assert record["scheduler"]["SLURM_JOB_ID"] == preempted
    assert "Restarts=1" in json.loads((runs["slurm"] / "slurm-jobs.json").read_text())[preempted]
    assert 1 <= record["resumed_from_epoch"] < EPOCHS
    # ... and its results equal the uninterrupted local run (test_results_equal_a_local_run).
