"""Run the real Snakemake workflow in a scratch copy of the repository (test helper)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
