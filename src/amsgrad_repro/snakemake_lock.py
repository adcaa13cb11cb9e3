"""A Snakemake lock left by a Snakemake that died: removed when nothing of this folder still
runs, explained in one line when something might.

Snakemake locks its working directory by writing ``.snakemake/locks/<n>.input.lock`` and
``<n>.output.lock`` (the files a run reads and writes, one per line; no pid, no host) and
removes them when it ends; ``snakemake --unlock`` deletes the folder. After ``kill -9`` they
stay, and the next run used to stop with Snakemake's generic "Directory cannot be locked".
At start-up (:func:`check`, from ``startup.snakemake_started``):

* no lock files: nothing to do;
* a Snakemake process of this folder is alive on this host (its command line runs
  snakemake and its ``--directory``, or else its working directory, is this folder), or one
  recorded itself as running here from another host: the lock may be its own, so it is
  kept and one line names the pid and what to type (Snakemake then decides whether its
  files overlap);
* otherwise the lock is stale: removed as ``--unlock`` would (not in a dry run, which
  only says so), with one line saying so.

Each Snakemake that may lock records itself in ``.snakemake/amsgrad-repro/running/`` (host,
pid, boot and start time, removed at its exit), because the process table shows only this
host: on a shared file system a Snakemake on another login node must not lose its lock.
A record whose process is gone on this host is dropped; another host's record is trusted
until ``make unlock``, which clears them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from amsgrad_repro.errors import ReportedError

LOCKS = Path(".snakemake", "locks")
RECORDS = Path(".snakemake", "amsgrad-repro", "running")
UNLOCK = "make unlock"


class LockHeld(ReportedError):
    """``--unlock`` while a Snakemake of this folder runs."""


@dataclass(frozen=True)
class Holder:
    """A Snakemake that may hold this folder's lock."""

    pid: int
    host: str
    command: str

    def describe(self) -> str:
        where = "" if self.host == platform.node() else f" on host {self.host}"
        return f"pid {self.pid}{where} ({self.command[:80]})"


# --- processes ---------------------------------------------------------------------------


def is_snakemake(argv: Sequence[str]) -> bool:
    """Whether a command line runs Snakemake: ``snakemake ...``, a Python running
    ``.../bin/snakemake`` or ``.../snakemake/__main__.py``, or ``python -m snakemake``."""
    if not argv:
        return False
    if Path(argv[0]).name == "snakemake":
        return True
    if not Path(argv[0]).name.startswith("python") or len(argv) < 2:
        return False
    script = argv[1]
    return (
        Path(script).name == "snakemake"
        or script.endswith("snakemake/__main__.py")
        or (script == "-m" and argv[2:3] == ["snakemake"])
    )


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def working_directory(pid: int, argv: Sequence[str]) -> Path | None:
    """The folder a Snakemake works in: its ``--directory``/``-d``, relative to its current
    directory, or that directory."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    for index, word in enumerate(argv):
        if word in ("--directory", "-d") and index + 1 < len(argv):
            return (cwd / argv[index + 1]).resolve()
        if word.startswith("--directory="):
            return (cwd / word.split("=", 1)[1]).resolve()
    return cwd.resolve()


def snakemakes_of(workdir: Path) -> list[Holder]:
    """The other Snakemake processes of this host working in ``workdir``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    workdir = workdir.resolve()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        argv = _argv(pid)
        if argv and is_snakemake(argv) and working_directory(pid, argv) == workdir:
            shown = argv[1:] if Path(argv[0]).name.startswith("python") else argv
            found.append(Holder(pid, platform.node(), " ".join(shown)))
    return found


# --- records of running Snakemakes --------------------------------------------------------


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), to tell a reused pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rfind(")") + 2 :].split()[19])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def record_running(workdir: Path, argv: Sequence[str] = sys.argv) -> Path:
    """Record this Snakemake as running in ``workdir`` until it exits."""
    record = workdir / RECORDS / f"{platform.node()}.{os.getpid()}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "pid": os.getpid(),
        "host": platform.node(),
        "boot": _boot_id(),
        "start": _start_ticks(os.getpid()),
        "command": " ".join(argv),
    }
    record.write_text(json.dumps(info) + "\n")
    atexit.register(lambda: record.unlink(missing_ok=True))
    return record


def recorded_elsewhere(workdir: Path) -> list[Holder]:
    """Snakemakes recorded as running in ``workdir`` on other hosts; records of this host
    whose process is gone (or whose pid now belongs to another process) are removed."""
    folder = workdir / RECORDS
    holders = []
    for record in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            record.unlink(missing_ok=True)
            continue
        if info.get("host") != platform.node():
            holders.append(Holder(int(info.get("pid", 0)), str(info.get("host")), info["command"]))
        elif info.get("pid") == os.getpid():
            continue
        elif info.get("boot") != _boot_id() or _start_ticks(info.get("pid", 0)) != info.get(
            "start"
        ):
            record.unlink(missing_ok=True)
    return holders


# --- the check ---------------------------------------------------------------------------


def check(
    workdir: Path,
    unlock: bool = False,
    dry_run: bool = False,
    nolock: bool = False,
    stream: TextIO | None = None,
) -> str | None:
    """Handle a lock left in ``workdir`` (see the module docstring) before Snakemake looks
    at it; returns the line printed, if any. With ``unlock`` (``snakemake --unlock``),
    raises :class:`LockHeld` while a Snakemake of this folder runs."""
    stream = stream or sys.stderr
    alive = snakemakes_of(workdir) + recorded_elsewhere(workdir)
    if unlock:
        if any(h.host == platform.node() for h in alive):
            raise LockHeld(_held_line(alive, f"`{UNLOCK}`"))
        shutil.rmtree(workdir / RECORDS, ignore_errors=True)  # another host's, by request
        return None
    locks = sorted((workdir / LOCKS).glob("*.lock")) if (workdir / LOCKS).is_dir() else []
    line = None
    if locks and alive:
        line = _held_line(alive, "rerun")
    elif locks and dry_run:
        line = (
            f"amsgrad-repro: {LOCKS} was left by a Snakemake that is no longer running "
            f"(killed?); the next run removes it by itself (or type `{UNLOCK}`)"
        )
    elif locks:
        shutil.rmtree(workdir / LOCKS, ignore_errors=True)
        line = (
            f"amsgrad-repro: removed {LOCKS}, left by a Snakemake of this folder that is no "
            "longer running (killed?); its unfinished jobs run again, training from their "
            "last checkpoints"
        )
    if line:
        print(line, file=stream, flush=True)
    if not (dry_run or nolock):
        with contextlib.suppress(OSError):
            record_running(workdir)
    return line


def _held_line(alive: Sequence[Holder], then: str) -> str:
    """One line: who may hold the lock, how to stop it, and ``then`` what to type."""
    first = alive[0]
    others = f" and {len(alive) - 1} more" if len(alive) > 1 else ""
    stop = f"wait for it to finish or stop it (kill {first.pid}), then {then}"
    if first.host != platform.node():  # its record may be stale: only that host can tell
        stop = (
            f"wait for it to finish or stop it (on {first.host}: kill {first.pid}), then "
            f"{then}; if it is not running there any more, type `{UNLOCK}`"
        )
    return (
        f"amsgrad-repro: {LOCKS} may be held by the Snakemake running in this folder, "
        f"{first.describe()}{others}: {stop}"
    )
