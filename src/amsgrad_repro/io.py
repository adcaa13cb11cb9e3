"""Atomic file writes and run provenance.

Every artifact the pipeline produces is written to a temporary file in the same directory and
renamed into place, so an interrupted job never leaves a half-written file that a later run
would trust. The file gets the permissions the process's umask allows (as ``open`` would
give it), not the owner-only mode of ``tempfile.mkstemp``: on a cluster's shared file system
the group must be able to read results, caches and raw data.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from amsgrad_repro.gpus import scheduler_record

TRACKED_PACKAGES = (
    "amsgrad-repro",
    "torch",
    "torchvision",
    "numpy",
    "numba",
    "pandas",
    "seaborn",
    "snakemake",
    "dvc",
)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` and rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            os.fchmod(fd, 0o666 & ~current_umask())
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """For a writer that opens the file itself (``snakemake --report``): a path of the same
    name in a fresh hidden folder beside ``path``, moved over ``path`` with the mode the
    umask allows when the block ends without an exception; else removed. An existing
    ``path`` is never half-overwritten, and does not pass its old mode on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    staged = folder / path.name
    try:
        yield staged
        os.chmod(staged, 0o666 & ~current_umask())
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staged, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``os.umask``
    can only be read by setting it, which would race with other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=_json_default)
        handle.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path) as handle:
        return json.load(handle)


def write_csv(path: str | os.PathLike[str], frame: Any) -> None:
    """Write a pandas DataFrame as CSV, atomically. Missing and non-finite values are
    written as ``nan``/``inf``, never as empty cells, so a diverged run's last row shows
    the values that stopped it (pandas reads both back as floats)."""
    with atomic_open(path) as handle:
        frame.to_csv(handle, index=False, na_rep="nan")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The checked-out commit, with ``-dirty`` when the tree has local changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def provenance() -> dict[str, Any]:
    """What a reader needs to know to trust (or redo) a run."""
    return {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "hostname": platform.node(),
        # Under SLURM: job id, GPU allocation, restart count (empty when run locally).
        "scheduler": scheduler_record(),
    }
