"""A job the pipeline starts ends with the Snakemake that started it, and an interrupted job
says one line instead of a traceback.

Why: ``kill -9`` of Snakemake (or of the ``make run`` above it) used to leave its trainers
running as orphans for hours, holding their runs' locks (``train.runlock``) and the CPUs,
and Ctrl-C printed a ``KeyboardInterrupt`` traceback per trainer.

* A rule's process is not Snakemake's child: Snakemake runs ``bash -c '...'`` and bash runs
  ``amsgrad-repro``, so the kernel's parent-death signal alone (``PR_SET_PDEATHSIG``) only
  covers the shell's death. Snakemake therefore names itself in :data:`SUPERVISOR_ENV`
  (:func:`name_supervisor`, called at its start-up), and a job whose ancestors include that
  process (:func:`supervise`) both sets the parent-death signal and watches, every
  :data:`POLL_S` seconds, that the process is still among its ancestors. When it is not (it
  died; its children were re-parented), the job gets SIGTERM, which ends it like Ctrl-C:
  one line, the checkpoint of its last finished epoch kept (checkpoints are written
  atomically), exit status 143. A job that does not stop within :data:`GRACE_S` seconds
  (stuck in a long native call) exits at once. The ancestry test also makes a stale or
  copied variable harmless (another host's pid, a reused pid, a command run by hand).
* :func:`interrupted_line` is that one line: what the job was doing (task, optimizer,
  seed(s), epoch and step) and its last checkpoint, read from the file itself.

On systems without ``/proc`` (macOS) nothing is supervised; Ctrl-C still gives one line.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

# The pid of the process whose death ends this one (set by Snakemake for its jobs, and by
# `make run` for its Snakemake).
SUPERVISOR_ENV = "AMSGRAD_REPRO_SUPERVISOR_PID"
POLL_S = 0.5
GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells do


class Stopped(BaseException):
    """SIGTERM in the main thread, raised like ``KeyboardInterrupt`` (not an ``Exception``,
    so that no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int, reason: str) -> None:
        super().__init__(reason)
        self.signum = signum
        self.reason = reason


# Why SIGTERM came, when it came from the watcher (the message says so).
_stop_reason: dict[str, str] = {}


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum, _stop_reason.get("reason", "SIGTERM"))


def install_stop_handler() -> None:
    """SIGTERM raises :class:`Stopped` in the main thread. SIGINT keeps Python's own
    handler (``KeyboardInterrupt``), or stays ignored when the process inherited it so
    (a background job of a script)."""
    signal.signal(signal.SIGTERM, _raise_stopped)


def ignore_further_interrupts() -> None:
    """While the one line is printed and the process exits, a second Ctrl-C or SIGTERM
    (Snakemake's and the terminal's, say) must not start a traceback."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends, then deliver them.

    Why: a ``KeyboardInterrupt`` raised inside ``torch.save`` makes its zip writer's
    ``__exit__`` fail with an unrelated ``RuntimeError`` (a traceback, exit status 1). The
    checkpoint write is short; recording the signal instead of acting on it lets the write
    finish, and the signal is then raised again through the handler that was in place, so
    the job is interrupted as usual with a checkpoint one epoch newer. (Blocking the
    signal with ``pthread_sigmask`` would not do: a process-directed signal goes to any
    thread that does not block it, torch's worker threads included.) Python handlers can
    only be set in the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {signum: signal.signal(signum, record) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signal.raise_signal(pending[0])


def interruption_in(error: BaseException) -> BaseException | None:
    """The ``KeyboardInterrupt`` or :class:`Stopped` that ``error`` was raised while
    handling, if any: a library's clean-up code can fail on the way out of an interrupt and
    hide it behind its own error, which is still an interruption, not a crash."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt | Stopped):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# --- ancestry --------------------------------------------------------------------------


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc/<pid>/stat``; None when it is gone (or there
    is no ``/proc``). The command name in field 2 may contain spaces and parentheses: the
    fields are read after its last ``)``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    if not fields or fields[0] == "Z":  # a zombie's children are re-parented already
        return None
    return int(fields[1])


def ancestors(pid: int | None = None, limit: int = 64) -> list[int]:
    """The pids above ``pid`` (default: this process), nearest first, up to pid 1."""
    found: list[int] = []
    current = os.getppid() if pid is None else parent_of(pid)
    while current and current not in found and len(found) < limit:
        found.append(current)
        if current == 1:
            break
        current = parent_of(current)
    return found


def supervisor_pid(environ: MutableMapping[str, str] = os.environ) -> int | None:
    """The pid in :data:`SUPERVISOR_ENV`, if it names one."""
    text = environ.get(SUPERVISOR_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 1 else None


def name_supervisor(environ: MutableMapping[str, str] = os.environ) -> None:
    """Make this process the supervisor of the processes it starts from now on."""
    environ[SUPERVISOR_ENV] = str(os.getpid())


def set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` when the parent exits (Linux only). The signal is
    tied to the thread that forked this process; a shell or Snakemake's job thread waits
    for its child, so it exits only with the process."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch(supervisor: int, on_gone: Callable[[], None], poll_s: float = POLL_S) -> None:
    """Call ``on_gone`` (from a daemon thread) once ``supervisor`` is no longer among this
    process's ancestors."""

    def loop() -> None:
        while supervisor in ancestors():
            time.sleep(poll_s)
        on_gone()

    threading.Thread(target=loop, name="supervisor-watch", daemon=True).start()


def supervise(
    environ: MutableMapping[str, str] = os.environ,
    signum: int = signal.SIGTERM,
    who: str = "the Snakemake that started it",
) -> int | None:
    """End this process (``signum`` to itself, then an exit after :data:`GRACE_S` s) when
    the process named in :data:`SUPERVISOR_ENV` dies, if it is one of its ancestors;
    returns that pid, or None when nothing is supervised. The parent-death signal is set
    too, except for SIGKILL (Snakemake under make), which would come before the line that
    says why: the watcher then stops it within :data:`POLL_S`."""
    supervisor = supervisor_pid(environ)
    if supervisor is None or supervisor not in ancestors():
        return None
    parent = os.getppid()
    if signum != signal.SIGKILL:  # a SIGKILL would come before the line saying why
        set_parent_death_signal(signum)

    def stop() -> None:
        _stop_reason["reason"] = f"{who} (pid {supervisor}) is gone"
        if signum == signal.SIGKILL:  # no handler will say it
            print(f"amsgrad-repro: {_stop_reason['reason']}: stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signum)
        time.sleep(GRACE_S)
        print(
            f"amsgrad-repro: {who} (pid {supervisor}) is gone and this job did not stop "
            f"within {GRACE_S:g} s of SIGTERM: exiting now",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_STATUS.get(signum, 128 + int(signum)))

    if os.getppid() != parent:  # the parent died before the signal was set
        threading.Thread(target=stop, daemon=True).start()
    else:
        watch(supervisor, stop)
    return supervisor


# --- the one line ----------------------------------------------------------------------


def exit_status(stop: BaseException) -> int:
    signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
    return EXIT_STATUS.get(signum, 128 + int(signum))


def interrupted_line(command: str, args: Any, stop: BaseException) -> str:
    """``amsgrad-repro <command>: interrupted (...) while <doing>; <checkpoint>``."""
    cause = stop.reason if isinstance(stop, Stopped) else "Ctrl-C (SIGINT)"
    job = _training_job(stop.__traceback__)
    doing = _doing(job, args)
    checkpoint = _checkpoint_note(job, args)
    return f"amsgrad-repro {command}: interrupted ({cause}) while {doing}; {checkpoint}"


def _training_job(tb: TracebackType | None) -> Any:
    """The training job on the interrupted call stack, if one was running: its ``self``
    (the job's counters are read at the moment of the interrupt, without the training loop
    having to publish them)."""
    engine = sys.modules.get("amsgrad_repro.train.engine")
    if engine is None:
        return None
    for frame, _ in traceback.walk_tb(tb):
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, engine.TrainingJob):
            return candidate
    return None


def _doing(job: Any, args: Any) -> str:
    if job is not None:
        total = job.epochs * job.steps_per_epoch
        if job.step == job.epoch * job.steps_per_epoch and job.epoch:  # at an epoch's end
            where = f"after epoch {job.epoch}/{job.epochs}"
        else:
            where = f"in epoch {min(job.epoch + 1, job.epochs)}/{job.epochs}"
        return f"training {job.label()} {where} (step {job.step}/{total})"
    names = [str(getattr(args, key)) for key in ("task", "optimizer") if getattr(args, key, None)]
    seeds = getattr(args, "seeds", None) or [
        m.get("seed") for m in getattr(args, "members", None) or [] if isinstance(m, dict)
    ]
    if getattr(args, "seed", None) is not None:
        names.append(str(args.seed))
    elif seeds:
        names.append(f"[{','.join(str(s) for s in seeds)}]")
    for key in ("dataset", "name"):
        if getattr(args, key, None):
            names.append(f"{key} {getattr(args, key)}")
    return f"running {'/'.join(names) or getattr(args, 'command', 'the command')}"


def _checkpoint_note(job: Any, args: Any) -> str:
    """Where a rerun continues from: the last checkpoint (its epoch, read from the file),
    or that there is none."""
    if job is not None:
        path = Path(job.checkpoint_path)
    elif getattr(args, "checkpoint_dir", None):
        path = Path(args.checkpoint_dir) / "last.pt"
    else:
        return "its outputs are written only when complete: a rerun starts it over"
    if not path.is_file():
        return f"no checkpoint yet ({path}): a rerun starts it from the beginning"
    try:
        import torch

        state = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
        after = f" (after epoch {state['epoch']}, step {state['step']})"
    except Exception:  # an unreadable checkpoint is ignored by the rerun too
        return f"last checkpoint {path} is unreadable: a rerun starts it from the beginning"
    return f"last checkpoint {path}{after}: a rerun resumes from it"
