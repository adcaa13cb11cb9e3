"""The commands the messages print (``amsgrad_repro.commands``): the user's configuration
kept, their dry-run, quiet, targets and forcing dropped, ``--cores`` given, what is forced
last, and the ``make run`` form passing the same words to Snakemake through make and the
shell. The messages themselves are run as typed where they are raised for real
(tests/test_data_pipeline.py: a damaged cache; tests/test_share.py: stale pulled runs)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from amsgrad_repro import commands

REPO = Path(__file__).resolve().parents[1]
USER = [
    ".venv/bin/snakemake", "-n", "--quiet", "rules", "--cores", "3", "--config", "scale=smoke",
    "tasks={logreg: {hparams: {lr: 1e6}}}", "--workflow-profile", "workflow/profiles/local",
    "--forcerun", "old/run.json",
]  # fmt: skip


def test_the_user_configuration_is_kept_and_nothing_else():
    assert commands.kept_arguments(USER) == [
        "--workflow-profile", "workflow/profiles/local",
        "--config", "scale=smoke", "tasks={logreg: {hparams: {lr: 1e6}}}",
    ]  # fmt: skip
    assert commands.kept_arguments(["snakemake", "--cores", "all", "results/x.png"]) == []
    python_m = [sys.executable, "-m", "snakemake", "--config=scale=smoke"]  # -m, --opt=value
    assert commands.kept_arguments(python_m) == ["--config", "scale=smoke"]
    assert commands.given_cores(USER) == "3" and commands.given_cores(["s", "-n"]) is None


def test_commands_have_cores_and_force_last(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kept = ["--config", "scale=smoke"]
    rebuild = shlex.split(commands.rebuild_cache(tmp_path / "data/cache/mnist.pt", kept))
    program = commands.program()
    assert rebuild == [*program, "--cores", "1", *kept, "--force", "data/cache/mnist.pt"]
    assert Path(program[0]).name == "snakemake" and Path(program[0]).is_absolute()
    line = shlex.split(commands.recompute_runs(["r/run.json"], ["snakemake", "-n"])[0])
    assert line == [*program, "--cores", "all", "--forcerun", "r/run.json"]
    # A profile gives the cores (a cluster profile sets jobs instead).
    profiled = ["--workflow-profile", "workflow/profiles/slurm"]
    assert "--cores" not in commands.rebuild_cache("data/cache/mnist.pt", profiled)


def project_folder(tmp_path: Path) -> Path:
    """A project folder: the Makefile and this environment as its .venv (a symlink)."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(REPO / "Makefile", folder / "Makefile")
    venv = Path(sys.executable).parent.parent
    (folder / ".venv").symlink_to(venv)
    (folder / "pyproject.toml").write_text("")
    os.utime(folder / "pyproject.toml", (0, 0))  # older than the venv's stamp: no install
    return folder


def test_make_form_passes_the_same_words_to_snakemake(tmp_path):
    folder = project_folder(tmp_path)
    printed = subprocess.run(
        [str(folder / ".venv/bin/python"), "-c",
         "import sys; from amsgrad_repro import commands; "
         "print('\\n'.join(commands.recompute_runs(['results/runs/a b/0/run.json'], sys.argv)))",
         *USER[1:]],
        cwd=folder, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    ).stdout.splitlines()  # fmt: skip
    snakemake, make = printed
    assert shlex.split(snakemake)[0] == ".venv/bin/snakemake"  # from the project folder
    assert make.startswith("make run SNAKEMAKE_ARGS=")
    assert shlex.split(snakemake)[1:3] == ["--cores", "3"]  # the user's own
    expected = [*commands.kept_arguments(USER), "--forcerun", "results/runs/a b/0/run.json"]
    assert shlex.split(snakemake)[3:] == expected
    # What make would run (-n: print the recipe, run nothing).
    words = shlex.split(make)
    recipe = subprocess.run(
        [words[0], "-n", *words[1:]], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")  # the recipe's continued lines
    line = next(line for line in recipe.splitlines() if "/snakemake " in line)
    ran = shlex.split(line)
    start = next(i for i, w in enumerate(ran) if w.endswith("/snakemake"))
    assert ran[start + 1 : start + 4] == ["--cores", "all", "--rerun-incomplete"]
    assert ran[start + 4 :] == expected, (ran, expected)


def test_no_make_form_outside_a_project_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(commands.recompute_runs(["r/run.json"], ["snakemake"])) == 1


def test_one_more_config_item_joins_the_users_own(tmp_path, monkeypatch):
    """Snakemake keeps only the last --config option: the item is added to the user's."""
    monkeypatch.chdir(tmp_path)
    item = "datasets={mnist: {sources: [/copy]}}"
    line = shlex.split(commands.run_with_config(item, ["--config", "scale=smoke"]))
    assert line[1:] == ["--cores", "all", "--config", "scale=smoke", item]
    from snakemake.cli import get_argument_parser

    args, _ = get_argument_parser().parse_known_args(line[1:])
    assert args.config == ["scale=smoke", item]
    assert shlex.split(commands.run_with_config(item, []))[3:] == ["--config", item]
