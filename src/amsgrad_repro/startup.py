"""Checks the workflow makes when Snakemake starts (``workflow/rules/common.smk``), so that
a problem stops the run at once with one clear line instead of failing every job.

* :func:`own_cli_on_path`: every rule runs ``amsgrad-repro``. Snakemake started as
  ``.venv/bin/snakemake`` without the environment activated (``PATH=/usr/bin:/bin``) would
  run jobs that cannot find it, each failing with the cause hidden in its log. The tool is
  taken from beside the interpreter that runs Snakemake, which is the project's own.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import MutableMapping
from pathlib import Path

from amsgrad_repro.errors import ReportedError

CLI = "amsgrad-repro"


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
