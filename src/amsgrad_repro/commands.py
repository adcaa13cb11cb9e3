"""The Snakemake commands the project's messages tell a user to type, built in one place.

A printed fix must work as typed, from the folder the user is in:

* the program is the ``snakemake`` of this environment (the one beside the interpreter
  running this code), as ``.venv/bin/snakemake`` from the project folder or an absolute
  path elsewhere, not a bare ``snakemake`` that may not be on PATH (it need not be:
  ``amsgrad_repro.startup.own_cli_on_path`` finds the rules' tool beside it; only a job in
  a rule's own conda environment, which has no Snakemake, falls back to the bare name);
* it has ``--cores`` (Snakemake refuses to run without one unless a profile gives it);
* it keeps only those of the user's own arguments that decide which files are meant and
  how jobs run (:func:`kept_arguments`: ``--config``, ``--configfile``, profiles,
  ``--directory``, ``--snakefile``, the rerun triggers, the software deployment), never
  a ``-n``, a ``--quiet``, a target or a ``--forcerun`` copied from the command that
  failed;
* what it forces comes last (``--forcerun`` takes every following word as a file or rule
  to force; ``--force FILE`` forces only that target's job).

The main Snakemake records the kept arguments in :data:`ARGS_ENV` (:func:`remember`), so
that a job's message (a damaged cache found by a trainer) names the same configuration.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The main Snakemake's kept arguments (JSON list), inherited by its jobs.
ARGS_ENV = "AMSGRAD_REPRO_SNAKEMAKE_ARGS"
# Characters that `make run SNAKEMAKE_ARGS="..."` would not pass through unchanged (the
# shell's double quotes, make's own `$`).
NOT_MAKE_SAFE = set('"$`\\!')


def kept_arguments(argv: Sequence[str]) -> list[str]:
    """The arguments of the Snakemake command line ``argv`` (``argv[0]`` the program) that a
    printed fix repeats (the module docstring lists them), read with Snakemake's own parser so that
    abbreviations and ``--opt=value`` forms count; a line it cannot read keeps nothing."""
    from snakemake.settings.enums import RerunTrigger

    args = parsed_arguments(argv)
    if args is None:
        return []
    kept: list[str] = []
    for option, value in (
        ("--snakefile", args.snakefile),
        ("--directory", args.directory),
        ("--profile", args.profile),
        ("--workflow-profile", args.workflow_profile),
    ):
        if value is not None:
            kept += [option, str(value)]
    if args.configfile:
        kept += ["--configfile", *map(str, args.configfile)]
    triggers = set(args.rerun_triggers or ())
    if triggers and triggers != set(RerunTrigger.all()):
        kept += ["--rerun-triggers", *sorted(t.name.lower().replace("_", "-") for t in triggers)]
    methods = set(args.software_deployment_method or ())
    if args.use_conda:
        methods.add("conda")
    if methods:
        kept += ["--software-deployment-method", *sorted(str(m).lower() for m in methods)]
    if args.conda_prefix:
        kept += ["--conda-prefix", str(args.conda_prefix)]
    config = [item for item in args.config or () if "=" in item]  # not a swallowed target
    if config:
        kept += ["--config", *config]
    return kept


def parsed_arguments(argv: Sequence[str]) -> Any:
    """``argv`` (a ``snakemake`` command line, program first) read by Snakemake's own
    parser; None for a line it refuses (Snakemake itself will say why)."""
    from snakemake.cli import get_argument_parser

    words = list(argv[1:])
    if words[:2] == ["-m", "snakemake"]:  # python -m snakemake (startup.snakemake_command_line)
        words = words[2:]
    try:
        args, _ = get_argument_parser().parse_known_args(words)
    except SystemExit:
        return None
    return args


def given_cores(argv: Sequence[str]) -> str | None:
    """The ``--cores`` of a Snakemake command line as typed (``all`` stays ``all``: the
    parser would turn it into this machine's count), if it gives one."""
    words = list(argv[1:])
    for index, word in enumerate(words):
        if word.startswith("--cores="):
            return word.split("=", 1)[1]
        if word in ("--cores", "-c") and index + 1 < len(words):
            value = words[index + 1]
            return None if value.startswith("-") else value
    return None


def remember(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> None:
    """Record this Snakemake's kept arguments for the jobs it starts (:data:`ARGS_ENV`)."""
    target = os.environ if environ is None else environ
    target[ARGS_ENV] = json.dumps(kept_arguments(argv))  # type: ignore[index]


def remembered(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The kept arguments of the Snakemake that started this job; none when run by hand."""
    try:
        value = json.loads(environ.get(ARGS_ENV, "[]"))
    except ValueError:
        return []
    return [str(word) for word in value] if isinstance(value, list) else []


def program(
    cwd: Path | None = None, interpreter: str = sys.executable, absolute: bool = False
) -> list[str]:
    """This environment's Snakemake: ``.venv/bin/snakemake`` relative to ``cwd`` when it is
    inside, else its absolute path (``absolute``: always, for a command typed elsewhere
    than ``cwd``), or ``python -m snakemake`` of ``interpreter`` when no script is there.
    The interpreter's path is kept as it is (a venv's ``python`` is a symlink)."""
    cwd = Path.cwd() if cwd is None else cwd
    script = Path(os.path.abspath(interpreter)).parent / "snakemake"
    if not (script.is_file() and os.access(script, os.X_OK)):
        if interpreter == sys.executable and importlib.util.find_spec("snakemake"):
            return [os.path.abspath(interpreter), "-m", "snakemake"]
        return ["snakemake"]  # a rule's own environment without it: the user's Snakemake
    if not absolute:
        try:
            return [str(script.relative_to(Path(os.path.abspath(cwd))))]
        except ValueError:
            pass
    return [str(script)]


def _cores(kept: Sequence[str], cores: str) -> list[str]:
    """``--cores`` unless a profile the user named gives it (a cluster profile sets jobs)."""
    profiled = any(
        option in kept and kept[kept.index(option) + 1] != "none"
        for option in ("--profile", "--workflow-profile")
    )
    return [] if profiled else ["--cores", cores]


def snakemake_line(
    kept: Sequence[str],
    cores: str,
    forcing: Sequence[str],
    cwd: Path | None = None,
    given: str | None = None,
) -> list[str]:
    """A runnable Snakemake command line: program, ``--cores`` (the user's ``given`` one,
    else ``cores`` unless their profile gives it), the kept arguments, then what it forces
    (last)."""
    absolute = "--directory" in kept
    with_cores = ["--cores", given] if given else _cores(kept, cores)
    return [*program(cwd, absolute=absolute), *with_cores, *kept, *forcing]


def shell(words: Iterable[str]) -> str:
    """Words as one line to paste into a POSIX shell."""
    return " ".join(shlex.quote(word) for word in words)


def rebuild_cache(file: str | Path, kept: Sequence[str] | None = None) -> str:
    """The command that rebuilds one dataset cache and nothing else: ``--force`` forces
    the target's own job (``--forcerun`` would swallow the target and schedule the whole
    pipeline). ``kept`` defaults to the arguments of the Snakemake that started this job,
    so a cache built from ``--config`` sources is rebuilt from them."""
    kept = remembered() if kept is None else kept
    return shell(snakemake_line(kept, "1", ["--force", _relative(file)]))


def build_cache(file: str | Path, kept: Sequence[str] | None = None) -> str:
    """The command that builds a missing dataset cache."""
    kept = remembered() if kept is None else kept
    return shell(snakemake_line(kept, "1", [_relative(file)]))


def run_with_config(item: str, kept: Sequence[str] | None = None) -> str:
    """The pipeline with one more ``--config`` item (added to the user's own: a second
    ``--config`` option would replace the first)."""
    kept = list(remembered() if kept is None else kept)
    # kept_arguments puts --config last, so the item joins its values.
    kept += [item] if "--config" in kept else ["--config", item]
    return shell(snakemake_line(kept, "all", []))


def recompute_runs(run_records: Sequence[str], argv: Sequence[str]) -> list[str]:
    """The commands that recompute these runs (their ``run.json`` files) and everything
    derived from them, with the configuration of the Snakemake command line ``argv``: the
    Snakemake line, and the same through ``make run`` when the user is in a project folder
    whose Makefile and ``.venv`` that command would use."""
    kept = kept_arguments(argv)
    forcing = ["--forcerun", *run_records]
    commands = [shell(snakemake_line(kept, "all", forcing, given=given_cores(argv)))]
    make = make_run(kept, forcing)
    if make:
        commands.append(make)
    return commands


def make_run(kept: Sequence[str], forcing: Sequence[str], cwd: Path | None = None) -> str | None:
    """``make run SNAKEMAKE_ARGS="..."`` for these arguments, when ``cwd`` is a project folder
    (a Makefile, and this environment is its ``.venv``) and the arguments pass through the
    double quotes and make unchanged; None otherwise."""
    cwd = Path.cwd() if cwd is None else cwd
    if "--directory" in kept or not (cwd / "Makefile").is_file():
        return None
    if program(cwd) != [str(Path(".venv") / "bin" / "snakemake")]:
        return None
    value = shell([*kept, *forcing])
    if NOT_MAKE_SAFE & set(value):
        return None
    return f'make run SNAKEMAKE_ARGS="{value}"'


def _relative(file: str | Path) -> str:
    """``file`` relative to the working directory when it is inside it (Snakemake's targets
    are relative to its working directory)."""
    path = Path(file)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return str(path)
