"""Checks the workflow makes when Snakemake starts (``workflow/rules/common.smk``), so that
a problem stops the run at once with one clear line instead of failing every job.

* :func:`own_cli_on_path`: every rule runs ``amsgrad-repro``. Snakemake started as
  ``.venv/bin/snakemake`` without the environment activated (``PATH=/usr/bin:/bin``) would
  run jobs that cannot find it, each failing with the cause hidden in its log. The tool is
  taken from beside the interpreter that runs Snakemake, which is the project's own.
* :func:`check_pulled_runs`: pulled runs whose settings differ from what the configuration
  gives them stop the run before any stage reads them (``amsgrad_repro.staleness``).
* :func:`snakemake_started`: this Snakemake ends with the ``make run`` that started it, its
  jobs end with it (``amsgrad_repro.supervision``), and a lock left by a Snakemake that
  died is removed or explained in one line (``amsgrad_repro.snakemake_lock``).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amsgrad_repro import commands, layout, snakemake_lock, supervision
from amsgrad_repro.errors import ReportedError
from amsgrad_repro.staleness import StaleRuns, stale_message, stale_runs

__all__ = [
    "Forcing",
    "ReportedError",
    "StartupError",
    "check_pulled_runs",
    "forcing",
    "own_cli_on_path",
    "snakemake_started",
]

CLI = "amsgrad-repro"
# Set by amsgrad_repro.share for its own Snakemake calls (summary, rule graph, building
# the dataset caches): a pull checks the runs it pulled itself, at its end.
SKIP_STALE_CHECK_ENV = "AMSGRAD_REPRO_SKIP_STALE_CHECK"


class StartupError(ReportedError):
    """The workflow cannot run as started; the message says how to start it."""


def own_cli_on_path(
    environ: MutableMapping[str, str] = os.environ,
    interpreter: str = sys.executable,
    deployed_per_rule: bool = False,
) -> str:
    """Put the directory of ``interpreter`` first on ``environ["PATH"]`` when it holds the
    command-line tool (jobs inherit the variable), and return where the tool is. Raises
    :class:`StartupError` when no ``amsgrad-repro`` can be found, unless the rules get
    their own environments (``--software-deployment-method conda``)."""
    own = Path(interpreter).parent
    path = environ.get("PATH", "")
    if (own / CLI).is_file() and os.access(own / CLI, os.X_OK):
        parts = [p for p in path.split(os.pathsep) if p and Path(p) != own]
        environ["PATH"] = os.pathsep.join([str(own), *parts])
        return str(own / CLI)
    found = shutil.which(CLI, path=path)
    if found or deployed_per_rule:
        return found or f"{CLI} (from each rule's conda environment)"
    raise StartupError(
        f"{CLI}, the command every rule runs, is neither beside the Python running "
        f"Snakemake ({own}) nor on PATH: run `make install` and start .venv/bin/snakemake "
        "(or `source .venv/bin/activate` first), or add "
        "--software-deployment-method conda."
    )


def snakemake_command_line(argv: Sequence[str] = sys.argv) -> list[str]:
    """The command that started this Snakemake, runnable again (``python -m snakemake``
    shows up as ``.../snakemake/__main__.py``)."""
    if argv and argv[0].endswith("__main__.py"):
        return [sys.executable, "-m", "snakemake", *argv[1:]]
    return list(argv)


@dataclass(frozen=True)
class Forcing:
    """What a Snakemake command line forces and whether it checks parameters; read from
    the arguments themselves, because the Snakefile is parsed before Snakemake hands its
    DAG settings to the workflow."""

    forcerun: frozenset[str] = frozenset()
    forced_targets: frozenset[str] = frozenset()  # the targets, with --force
    forceall: bool = False
    params_trigger: bool = True

    def recomputes(self, run_dir: str) -> bool:
        """Whether this call recomputes the run in ``run_dir`` anyway: ``--forceall``,
        ``--forcerun`` of one of its files or of a rule that writes it (its stacked job's
        too, ``layout.rules_writing``), or ``--force`` with it as a target."""
        files = {f"{run_dir}/{name}" for name in layout.RUN_FILES}
        return (
            self.forceall
            or bool((files | layout.rules_writing(run_dir)) & self.forcerun)
            or bool(files & self.forced_targets)
        )


def forcing(argv: Sequence[str] = sys.argv) -> Forcing:
    """Parse ``argv`` (a ``snakemake`` command line) with Snakemake's own parser; a command
    line it cannot read forces nothing."""
    args = commands.parsed_arguments(argv)
    if args is None:
        return Forcing()
    triggers = {str(t).upper() for t in (args.rerun_triggers or ())}
    return Forcing(
        forcerun=frozenset(args.forcerun or ()),
        forced_targets=frozenset(args.targets or ()) if args.force else frozenset(),
        forceall=bool(args.forceall),
        params_trigger=not triggers or any("PARAMS" in t for t in triggers),
    )


def check_pulled_runs(
    root: Path,
    settings: Mapping[str, Any],
    exempt: Callable[[str], bool],
    command: Sequence[str],
) -> None:
    """Raise :class:`amsgrad_repro.staleness.StaleRuns` when a pulled run's settings differ
    from what the configuration gives it and this call does not recompute it."""
    stale = stale_runs(root, settings, exempt)
    if stale:
        raise StaleRuns(stale_message(stale, list(command)))


def snakemake_started(workflow: Any, argv: Sequence[str] = sys.argv) -> None:
    """What every Snakemake of this project does first (one call in common.smk): die with
    the ``make`` that started it (``make run`` names it), become the supervisor of the
    jobs it starts, and, as the main process, handle a lock left by a Snakemake that
    died. Raises Snakemake's ``WorkflowError`` with one line for ``--unlock`` while another
    Snakemake of this folder runs."""
    supervision.supervise(signum=signal.SIGKILL, who="the make that started this Snakemake")
    supervision.name_supervisor()
    if not workflow.is_main_process:
        return
    from snakemake.exceptions import WorkflowError

    args = commands.parsed_arguments(argv)
    if args is None:  # a command line Snakemake itself will refuse
        return
    commands.remember(argv)  # for the commands its jobs' messages print
    try:
        snakemake_lock.check(
            Path.cwd(), unlock=args.unlock, dry_run=args.dryrun, nolock=args.nolock
        )
    except snakemake_lock.LockHeld as error:
        raise WorkflowError(str(error)) from None
