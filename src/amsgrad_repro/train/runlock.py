"""One trainer per run: an exclusive lock on the run's checkpoint folder.

When ``snakemake`` itself is killed hard (SIGKILL, a lost login node), its training jobs
keep running as orphans; after ``snakemake --unlock`` a rerun starts the same jobs again,
and two processes would train and write the same run (checkpoint, metrics, run.json). So a
trainer takes ``flock`` on ``<checkpoint dir>/trainer.lock`` before it reads anything; a
second trainer of the same run waits up to ``wait_s`` seconds (default: not at all) and
then stops with a message naming the holder (pid, host, start time) and what to do. The
kernel releases the lock when the holder exits in any way, SIGKILL and preemption included,
so a stale lock file never blocks a rerun. On NFS, Linux maps ``flock`` to NFS locks, which
other clients see.

When the run completes, the lock file and the emptied checkpoint folders (up to
``results/checkpoints``) are removed: only an unfinished run leaves a folder behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from amsgrad_repro.errors import ReportedError

LOCK_NAME = "trainer.lock"
CHECKPOINTS_ROOT = "checkpoints"
POLL_S = 0.5


class RunLocked(ReportedError):
    """Another trainer holds the run; the message names it and says what to do."""


@contextlib.contextmanager
def run_lock(checkpoint_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the run's lock for the ``with`` block; on leaving it, remove the lock file and
    the checkpoint folders that are empty by then."""
    checkpoint_dir = Path(checkpoint_dir)
    path = checkpoint_dir / LOCK_NAME
    fd = _acquire(path, wait_s)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still holding it: a waiter re-checks the inode
        os.close(fd)
        remove_empty_folders(checkpoint_dir)


def _acquire(path: Path, wait_s: float) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            if time.monotonic() >= deadline:
                raise RunLocked(_locked_message(path.parent, holder, wait_s)) from None
            time.sleep(POLL_S)
            continue
        if _still_at(fd, path):
            _write_holder(fd)
            return fd
        os.close(fd)  # the previous holder finished and removed it: take the new file


def _open_lock_file(path: Path) -> int:
    """Open (creating) the lock file; retries when a finishing trainer of a neighbouring
    run removes an emptied parent folder at the same moment."""
    for _ in range(10):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            continue
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv[:8]),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)


def _read_holder(fd: int) -> dict[str, str]:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _locked_message(folder: Path, holder: dict[str, str], wait_s: float) -> str:
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    waited = f" (waited {wait_s:g} s)" if wait_s else ""
    return (
        f"another trainer of this run holds {folder / LOCK_NAME}{waited}: pid {pid} on host "
        f"{host}, started {holder.get('started', '?')} ({holder.get('command', '?')}). Two "
        "trainers would write the same run. If it is an orphan of a killed snakemake, stop "
        f"it (on {host}: kill {pid}) or let it finish; then rerun. Pass --lock-wait SECONDS "
        "to wait for it instead."
    )


def remove_empty_folders(folder: Path) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) the
    nearest ancestor called ``checkpoints``; without such an ancestor only ``folder``."""
    folder = Path(folder)
    stop = next((p for p in folder.parents if p.name == CHECKPOINTS_ROOT), folder.parent)
    current = folder
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:  # not empty (another run's folder, an unfinished checkpoint) or gone
            if current.exists():
                return
        current = current.parent
