"""Run the real Snakemake workflow in a scratch copy of the repository (test helper)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from amsgrad_repro.layout import rule_family

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "envs", "profiles")


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow definition (no results) to run the pipeline in."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


PAPER_OPTIMIZERS = ["adam", "amsgrad", "adamnc", "torch-amsgrad"]


def with_optimizers(config: dict, optimizers: list[str], kinds=("synthetic",)) -> dict:
    """The config with every task of these kinds running only ``optimizers`` (tests whose
    subject is not the optimizer set stay fast; the plug-in runs the generic path)."""
    for task in config["tasks"].values():
        if task["kind"] in kinds:
            task["optimizers"] = list(optimizers)
    return config


def make_project(workdir: Path, config: dict) -> Path:
    """Write the scratch copy's edited config.yaml and make the copy a git + DVC repo, as
    the data stage expects of a project checkout."""
    from amsgrad_repro.data import dvc

    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    env = {**os.environ, **dvc.OFFLINE_ENV}
    subprocess.run([dvc.dvc_executable(), "init", "-q"], cwd=workdir, env=env, check=True)
    return workdir


def snakemake_env() -> dict[str, str]:
    """The environment of a user who activated the project's virtual environment."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def bare_env() -> dict[str, str]:
    """A user who did not activate the virtual environment: no snakemake on PATH (the
    test's PYTHONPATH, if any, stays: it names the code under test)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "OMP_NUM_THREADS": "1"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def snakemake_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--cores", "2", *args]


def run_snakemake(
    workdir: Path,
    *args: str,
    timeout: int = 900,
    check: bool = True,
    env: dict[str, str] | None = None,
    umask: int | None = None,
):
    """Snakemake in ``workdir`` (``env`` replaces the activated-venv environment; ``umask``
    is set for it and the jobs it starts)."""
    result = subprocess.run(
        snakemake_command(*args),
        cwd=workdir,
        env=env or snakemake_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


def prepare_data_command(spec: dict, root: Path, out: Path, dataset: str = "mnist") -> list[str]:
    """The data stage's command line for one dataset entry, as the rule runs it."""
    return [
        sys.executable, "-m", "amsgrad_repro.cli", "prepare-data", "--dataset", dataset,
        "--settings", json.dumps(spec), "--out", str(out), "--root", str(root),
    ]  # fmt: skip


def job_counts(table: dict[str, int]) -> dict[str, int]:
    """A Snakemake job-stats table with the stacked jobs counted per family."""
    counts: dict[str, int] = {}
    for name, count in table.items():
        counts[rule_family(name)] = counts.get(rule_family(name), 0) + int(count)
    return counts


def dry_run(workdir: Path, *args: str) -> list[dict[str, object]]:
    """The jobs ``snakemake -n`` would run in ``workdir`` with ``args``, as Snakemake
    lists them: each one's rule and its sorted outputs and inputs."""
    result = run_snakemake(workdir, "--dry-run", *args)
    jobs = []
    for block in re.split(r"\n(?=\s*(?:local)?rule \S+:\n)", result.stdout):
        header = re.match(r"\s*(?:local)?rule (\S+):\n", block)
        if header:
            files = {}
            for key in ("output", "input"):
                found = re.search(rf"^\s*{key}: (.*)$", block, re.M)
                files[key] = tuple(sorted(found[1].split(", "))) if found else ()
            jobs.append({"rule": header[1], "outputs": files["output"], "inputs": files["input"]})
    return jobs


def scheduled_jobs(workdir: Path, *args: str) -> list[tuple[str, tuple[str, ...]]]:
    """The jobs ``snakemake -n`` would run: (rule, sorted outputs) each, sorted."""
    return sorted((job["rule"], job["outputs"]) for job in dry_run(workdir, *args))


# --- results built once per session, shared by the pytest-xdist workers ---------------


def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder all workers of this session share (xdist gives each worker its own
    basetemp ``.../popen-gwN`` below it); without xdist, this session's basetemp."""
    basetemp = tmp_path_factory.getbasetemp()
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """``build(folder)`` run by the first worker that asks, under a lock; the others wait
    and get the same folder. A failed build is recorded and reported to every test that
    asks again, instead of being retried by each."""
    root = session_root(tmp_path_factory)
    folder, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if failed.exists():
                pytest.fail(f"building {name} failed in another test:\n{failed.read_text()}")
            if not done.exists():
                try:
                    build(folder)
                except BaseException:
                    failed.write_text(traceback.format_exc()[-20000:])
                    raise
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def copy_run(source: Path, dest: Path) -> Path:
    """A private copy of a finished pipeline folder for a test that runs Snakemake in it
    or changes it (timestamps kept, so Snakemake sees the same up-to-date outputs)."""
    shutil.copytree(source, dest, symlinks=True)
    return dest
