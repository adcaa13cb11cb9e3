"""The real ``dvc`` command line, serialised by a file lock.

DVC refuses to run two commands in one repository at once ("Unable to acquire lock"); data
jobs for different datasets do run at once, so every call here takes an exclusive lock on
``.dvc/tmp/amsgrad-repro.lock`` first and waits its turn, and passes ``--wait-for-lock`` so
a ``dvc`` command a user runs by hand meanwhile delays the job instead of failing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

OFFLINE_ENV = {"DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATE_CHECK": "1"}


class DvcError(RuntimeError):
    """A dvc command failed; the message carries its output."""


def dvc_executable() -> str:
    """The dvc next to the running Python (the project's venv), else the one on PATH."""
    candidate = Path(sys.executable).with_name("dvc")
    return str(candidate) if candidate.exists() else "dvc"


def is_dvc_repo(root: Path) -> bool:
    return (root / ".dvc").is_dir()


@contextlib.contextmanager
def repo_lock(root: Path) -> Iterator[None]:
    lock_dir = root / ".dvc" / "tmp"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "amsgrad-repro.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``dvc <args>`` in ``root`` under the repository lock."""
    env = {**os.environ, **OFFLINE_ENV}
    with repo_lock(root):
        result = subprocess.run(
            [dvc_executable(), "--wait-for-lock", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
    if check and result.returncode != 0:
        raise DvcError(f"dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}".strip())
    return result


def has_default_remote(root: Path) -> bool:
    result = dvc(root, "remote", "default", check=False)
    return result.returncode == 0 and bool(result.stdout.strip())


def track(root: Path, target: Path) -> Path:
    """``dvc add`` a folder; returns the ``.dvc`` file to commit."""
    dvc(root, "add", "--quiet", str(target.relative_to(root)))
    return target.with_name(target.name + ".dvc")


def checkout(root: Path, dvc_file: Path) -> bool:
    """Restore a tracked target from the local DVC cache (no remote, no network); False
    when the cache does not hold all of it."""
    target = str(dvc_file.relative_to(root))
    return dvc(root, "checkout", "--quiet", "--force", target, check=False).returncode == 0


def pull(root: Path, dvc_file: Path) -> bool:
    """Try ``dvc pull`` of one tracked target; False when no remote holds it. ``--force``:
    a workspace copy that no longer matches the ``.dvc`` file is replaced, not kept."""
    if not has_default_remote(root):
        return False
    target = str(dvc_file.relative_to(root))
    return dvc(root, "pull", "--quiet", "--force", target, check=False).returncode == 0


def push(root: Path, *targets: str) -> None:
    dvc(root, "push", "--quiet", *targets)


def is_unchanged(root: Path, dvc_file: Path) -> bool:
    """True when the workspace copy of a tracked target matches its ``.dvc`` file, so it
    can be reused without a remote or a download."""
    result = dvc(root, "status", "--json", str(dvc_file.relative_to(root)), check=False)
    return result.returncode == 0 and result.stdout.strip() == "{}"


@contextlib.contextmanager
def dataset_lock(root: Path, name: str) -> Iterator[None]:
    """One preparer per dataset at a time, even across separate commands, so a dataset
    is never fetched twice into the same folder concurrently."""
    lock_dir = root / "data" / "cache"  # git-ignored, beside the caches it guards
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- Several targets at once (results sharing, amsgrad_repro.share) ----------------------


def add(root: Path, targets: list[str]) -> None:
    """``dvc add`` several paths (relative to ``root``) in one call; each gets its own
    ``.dvc`` file beside it."""
    if targets:
        dvc(root, "add", "--quiet", *targets)


def push_to(root: Path, targets: list[str], remote: str | None = None) -> None:
    """``dvc push`` the given ``.dvc`` files to ``remote`` (default: ``core.remote``). Not
    ``--quiet``: DVC would then drop the error lines (missing credentials, no such bucket)
    that an error message must pass on."""
    dvc(root, "push", *(["--remote", remote] if remote else []), *targets)


def pull_from(
    root: Path, targets: list[str], remote: str | None = None, force: bool = False
) -> None:
    """``dvc pull`` the given ``.dvc`` files; raises :class:`DvcError` when one is missing
    on the remote or would overwrite local changes (unless ``force``)."""
    options = [*(["--remote", remote] if remote else []), *(["--force"] if force else [])]
    dvc(root, "pull", *options, *targets)  # not --quiet: see push_to
