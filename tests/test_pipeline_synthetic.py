"""The synthetic stage end to end through Snakemake: outputs, reruns and interruptions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipeline import (
    PAPER_OPTIMIZERS,
    copy_workflow,
    run_snakemake,
    snakemake_command,
    snakemake_env,
    with_optimizers,
)

SYNTHETIC = ("synthetic_online", "synthetic_stochastic", "synthetic_theorem1")


def synthetic_only(workdir: Path) -> list[str]:
    """Targets of the synthetic stage alone (the other stages have their own tests)."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    runs = [
        f"results/runs/{task}/{optimizer}/{seed}/metrics.csv"
        for task in SYNTHETIC
        for optimizer in config["tasks"][task]["optimizers"]
        for seed in range(config["presets"]["smoke"]["seeds"])
    ]
    return runs + ["results/figures/figure1.png", "results/figures/figure1.pdf"]


def paper_workflow(workdir: Path) -> Path:
    """A copy whose synthetic tasks run the paper's optimizers (compiled kernel only)."""
    copy_workflow(workdir)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    (workdir / "config.yaml").write_text(yaml.safe_dump(with_optimizers(config, PAPER_OPTIMIZERS)))
    return workdir


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Started as a user would without activating the environment (only /usr/bin:/bin on
    PATH: the jobs must find amsgrad-repro beside Snakemake's Python) and with the group
    umask of a shared cluster file system."""
    workdir = paper_workflow(tmp_path_factory.mktemp("synthetic"))
    env = {**snakemake_env(), "PATH": "/usr/bin:/bin"}
    run_snakemake(
        workdir, *synthetic_only(workdir), "--config", "scale=smoke", env=env, umask=0o002
    )
    return workdir


@pytest.mark.slow
def test_jobs_find_the_tool_without_path_and_outputs_honour_the_umask(smoke_run):
    outputs = [p for p in (smoke_run / "results").rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in outputs) and any(p.suffix == ".png" for p in outputs)
    modes = {oct(p.stat().st_mode & 0o777) for p in outputs}
    assert modes == {oct(0o664)}, modes


def test_without_the_tool_snakemake_stops_at_start_up_with_one_line(tmp_path):
    from amsgrad_repro.startup import StartupError, own_cli_on_path

    environ = {"PATH": "/usr/bin:/bin"}
    with pytest.raises(StartupError, match="neither beside the Python running Snakemake"):
        own_cli_on_path(environ, interpreter=str(tmp_path / "python"))
    assert own_cli_on_path(environ, str(tmp_path / "python"), deployed_per_rule=True)


@pytest.mark.slow
def test_every_seed_has_its_own_outputs(smoke_run):
    config = yaml.safe_load((smoke_run / "config.yaml").read_text())
    for task in SYNTHETIC:
        for optimizer in config["tasks"][task]["optimizers"]:
            for seed in (0, 1):
                run = smoke_run / "results/runs" / task / optimizer / str(seed)
                metrics = pd.read_csv(run / "metrics.csv")
                ranges = [] if task == "synthetic_stochastic" else [  # periodic problems
                    "x_period_min", "x_period_max", "avg_regret_period_min",
                    "avg_regret_period_max",
                ]  # fmt: skip
                assert list(metrics.columns) == ["step", "x", "avg_regret", *ranges]
                assert metrics["step"].iloc[-1] == 20000
                info = json.loads((run / "run.json").read_text())
                assert info["seed"] == seed and info["status"] == "completed"
                assert info["state"] in ("converged", "failed", "unsettled")
                assert info["final"]["x"] == pytest.approx(metrics["x"].iloc[-1])
                assert "torch" in info["versions"] or "numpy" in info["versions"]
    for name in ("figure1.png", "figure1.pdf"):
        assert (smoke_run / "results/figures" / name).stat().st_size > 10_000


@pytest.mark.slow
def test_aggregate_has_bands_over_seeds(smoke_run):
    table = pd.read_csv(smoke_run / "results/aggregates/synthetic_stochastic.csv")
    assert set(table.columns) == {"optimizer", "step", "metric", "mean", "median", "lo", "hi", "n"}
    assert (table["n"] == 2).all()
    assert (table["lo"] <= table["mean"] + 1e-12).all()
    assert (table["mean"] <= table["hi"] + 1e-12).all()
    # Different seeds see different gradients, so some band has width.
    assert ((table["hi"] - table["lo"]) > 0).any()


@pytest.mark.slow
def test_rerun_completes_only_what_is_missing(smoke_run):
    runs = smoke_run / "results/runs"
    kept = runs / "synthetic_online/amsgrad/0/metrics.csv"
    before = kept.stat().st_mtime_ns
    lost = runs / "synthetic_stochastic/adam"
    for seed_dir in lost.iterdir():
        for item in seed_dir.iterdir():
            item.unlink()
    dry = run_snakemake(smoke_run, "-n", *synthetic_only(smoke_run), "--config", "scale=smoke")
    assert "synthetic_run" in dry.stdout
    run_snakemake(smoke_run, *synthetic_only(smoke_run), "--config", "scale=smoke")
    assert (lost / "0" / "metrics.csv").exists()
    assert kept.stat().st_mtime_ns == before
    final = run_snakemake(smoke_run, "-n", *synthetic_only(smoke_run), "--config", "scale=smoke")
    assert "Nothing to be done" in final.stdout + final.stderr


@pytest.mark.slow
def test_killed_pipeline_resumes_without_redoing_finished_jobs(tmp_path):
    workdir = paper_workflow(tmp_path / "killed")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    # A long stochastic problem so the kill lands while its job is running.
    config["presets"]["smoke"]["tasks"]["synthetic_stochastic"] = {"steps": 40_000_000}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    args = [*synthetic_only(workdir), "--config", "scale=smoke"]
    process = subprocess.Popen(
        snakemake_command(*args),
        cwd=workdir,
        env=snakemake_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    online = workdir / "results/runs/synthetic_online/adam/1/metrics.csv"
    stochastic_log = workdir / "results/logs/synthetic/synthetic_stochastic"
    deadline = time.time() + 300
    while time.time() < deadline and not (online.exists() and stochastic_log.exists()):
        time.sleep(0.2)
    assert online.exists(), "the pipeline did not get going"
    # Ctrl-C in the user's terminal: the whole process group gets SIGINT mid-job.
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)
    # Snakemake writes a job's benchmark file only once the job has finished.
    done_jobs = [
        (bench.parent.name, bench.stem)
        for bench in (workdir / "results/benchmarks/synthetic").rglob("*.tsv")
    ]
    assert done_jobs, "no job finished before the interruption"
    finished = {
        path: path.stat().st_mtime_ns
        for task, optimizer in done_jobs
        for path in (workdir / "results/runs" / task / optimizer).rglob("metrics.csv")
    }
    assert not (workdir / "results/figures/figure1.png").exists()
    # No half-written file sits where a later run would trust it.
    for path in (workdir / "results/runs").rglob("metrics.csv"):
        assert pd.read_csv(path)["step"].iloc[-1] > 0

    run_snakemake(workdir, "--rerun-incomplete", *args, timeout=1200)
    assert (workdir / "results/figures/figure1.png").exists()
    redone = [p for p, mtime in finished.items() if p.stat().st_mtime_ns != mtime]
    assert redone == [], f"finished runs were recomputed: {redone}"
