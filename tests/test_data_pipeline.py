"""The data stage inside Snakemake: one producer per dataset, and --keep-going when one
dataset is unreachable (the others and the synthetic stage still finish)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from amsgrad_repro.data import load_cache
from amsgrad_repro.data.prepare import prepare
from tests.miniatures import write_idx_dataset
from tests.pipeline import bare_env, copy_workflow, job_counts, make_project, run_snakemake

SYNTHETIC_RUN = "results/runs/synthetic_theorem1/adam/0/metrics.csv"
# Every test here runs Snakemake or reads what it ran.
pytestmark = pytest.mark.slow


def scratch_workflow(tmp_path: Path) -> Path:
    """A workflow copy, a git + DVC repo, fashion_mnist a miniature, mnist unreachable."""
    workdir = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["datasets"]["fashion_mnist"] = write_idx_dataset(tmp_path / "mini")
    config["datasets"]["mnist"]["sources"] = ["http://127.0.0.1:9/mnist/"]
    return make_project(workdir, config)


def test_one_dataset_job_serves_every_training_job(tmp_path: Path) -> None:
    workdir = scratch_workflow(tmp_path)
    targets = [f"results/runs/{t}/adam/0/metrics.csv" for t in ("logreg", "mlp")]
    targets += ["results/runs/logreg/amsgrad/0/metrics.csv"]
    result = run_snakemake(workdir, *targets, "-n", "--quiet", "rules", "--config", "scale=smoke")
    counts = job_counts(dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M)))
    assert counts.get("prepare_dataset") == 1, result.stdout
    # Three stacked jobs (one per task x optimizer; seed 0 is each one's only member).
    assert counts.get("train_stacked") == 3, result.stdout


def test_keep_going_past_an_unreachable_dataset(tmp_path: Path) -> None:
    workdir = scratch_workflow(tmp_path)
    targets = ["data/cache/fashion_mnist.pt", "data/cache/mnist.pt", SYNTHETIC_RUN]
    result = run_snakemake(
        workdir, "--keep-going", *targets, "--config", "scale=smoke", check=False
    )
    assert result.returncode != 0, "the unreachable dataset must fail the run"
    assert load_cache(workdir / "data/cache/fashion_mnist.pt").meta["num_train"] == 40
    assert (workdir / "data/raw/fashion_mnist.dvc").exists()
    assert (workdir / SYNTHETIC_RUN).exists()
    assert not (workdir / "data/cache/mnist.pt").exists()
    log = (workdir / "results/logs/data/mnist.log").read_text()
    assert "http://127.0.0.1:9/mnist/" in log and "datasets.mnist.sources" in log
    # The default workflow profile (profiles/default) shows the failed job's log in the
    # terminal, so the cause is not hidden behind "At least one job did not complete".
    terminal = result.stdout + result.stderr
    assert "no source could provide" in terminal and "datasets.mnist.sources" in terminal


def test_documented_cache_rebuild_schedules_only_that_cache(tmp_path: Path) -> None:
    """docs/datasets.md's rebuild command (the one the cache error prints too) forces the
    dataset's own job; the old `--forcerun prepare_dataset data/cache/…` scheduled the
    whole pipeline."""
    workdir = scratch_workflow(tmp_path)
    run_snakemake(workdir, "data/cache/fashion_mnist.pt", "--config", "scale=smoke")
    documented = re.search(
        r"`\.venv/bin/snakemake --cores 1 (--force data/cache/<dataset>\.pt)`",
        (Path(__file__).parents[1] / "docs/datasets.md").read_text(),
    )
    assert documented, "docs/datasets.md lost its rebuild command"
    words = documented.group(1).replace("<dataset>", "fashion_mnist").split()
    result = run_snakemake(workdir, *words, "-n", "--quiet", "rules", "--config", "scale=smoke")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert counts == {"prepare_dataset": "1", "total": "1"}, result.stdout


def printed_command(output: str, after: str) -> list[str]:
    """The command a message printed after ``after``, split as a shell would."""
    found = re.search(re.escape(after) + r"(.+)$", output, flags=re.M)
    assert found, output[-4000:]
    return shlex.split(found.group(1))


def test_damaged_cache_command_rebuilds_it_and_an_identical_rebuild_retrains_nothing(
    tmp_path: Path,
) -> None:
    """The damaged-cache message of a real training job gives a command that, typed as
    printed in the project folder without snakemake on PATH, rebuilds the cache; a
    rebuild with the same bytes then reruns no training job (Snakemake compares the
    cache's checksum: profiles/default sets max-checksum-file-size above the cache), while
    a cache with other bytes reruns it."""
    workdir = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    # Above Snakemake's default checksum limit (1 MB), like every real cache.
    config["datasets"]["fashion_mnist"] = write_idx_dataset(tmp_path / "mini", num_train=1600)
    make_project(workdir, config)
    cache = workdir / "data/cache/fashion_mnist.pt"
    smoke = ("--config", "scale=smoke", "tasks={logreg: {optimizers: [adam]}}")
    run_snakemake(workdir, "data/cache/fashion_mnist.pt", *smoke)
    assert cache.stat().st_size > 1_000_000
    intact = cache.read_bytes()
    damaged = bytearray(intact)
    damaged[300] ^= 0xFF  # inside the pickled index of the tensors
    cache.write_bytes(bytes(damaged))

    target = "results/runs/logreg/adam/0/metrics.csv"
    failed = run_snakemake(workdir, target, *smoke, check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "unreadable cache" in output, output[-4000:]
    assert "weights_only" not in output and "WeightsUnpickler" not in output, output[-4000:]
    command = printed_command(output, "; rebuild it with: ")
    assert (
        "--cores" in command
        and "-n" not in command
        and command[-1] == "data/cache/fashion_mnist.pt"
    )
    assert "scale=smoke" in command  # the configuration of the Snakemake that ran the job
    rebuilt = subprocess.run(
        command, cwd=workdir, env=bare_env(), capture_output=True, text=True, timeout=900
    )
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    assert cache.read_bytes() == intact  # a conversion is deterministic
    run_snakemake(workdir, target, *smoke)

    # The same command again: the same bytes, a newer file, and nothing to retrain.
    assert subprocess.run(command, cwd=workdir, env=bare_env(), capture_output=True).returncode == 0
    assert cache.stat().st_mtime_ns > (workdir / target).stat().st_mtime_ns
    dry = run_snakemake(workdir, target, *smoke, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]

    # Other bytes (another conversion of other images): the run is recomputed.
    other = write_idx_dataset(tmp_path / "other", num_train=1600, seed=1)
    (tmp_path / "elsewhere").mkdir()
    prepare(tmp_path / "elsewhere", "fashion_mnist", other, tmp_path / "other.pt")
    os.replace(tmp_path / "other.pt", cache)
    dry = run_snakemake(workdir, target, *smoke, "-n", "--quiet", "rules")
    counts = job_counts(dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, flags=re.M)))
    assert counts.get("train_stacked") == 1, dry.stdout
