"""Crashes and interruptions, with real processes and real signals: a job ends when the
Snakemake (or the ``make run``) that started it is killed, keeping a checkpoint a rerun
resumes from; Ctrl-C or SIGTERM give one line, not a traceback; a lock left by a killed
Snakemake is removed at the next run, never while a Snakemake of the folder runs."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from amsgrad_repro import snakemake_lock, supervision
from amsgrad_repro.snakemake_lock import LOCKS, RECORDS, LockHeld
from amsgrad_repro.train import checkpoint
from tests.pipeline import REPO_ROOT, run_snakemake, snakemake_command, snakemake_env
from tests.test_train import task_settings, write_miniature
from tests.test_train_pipeline import scratch_workflow

# A trainer the tests stop must still have far more than this to do when it is stopped.
EXIT_WITHIN_S = 30.0
TRAINER_LOCK = "trainer.lock"


def trainer_command(cache: Path, root: Path, epochs: int) -> list[str]:
    settings = task_settings(epochs=epochs)
    return [
        sys.executable, "-m", "amsgrad_repro.cli", "train", "--task", "toy",
        "--optimizer", "amsgrad", "--seed", "1", "--settings", json.dumps(settings),
        "--dataset-cache", str(cache), "--out", str(root / "run"),
        "--checkpoint-dir", str(root / "ckpt"), "--device", "cpu", "--threads", "1",
    ]  # fmt: skip


def env_without_supervisor() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(supervision.SUPERVISOR_ENV, None)
    return env


def wait_for(condition, timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not reaped, is not)."""
    return supervision.parent_of(pid) is not None


def checkpoint_epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return write_miniature(tmp_path / "data")


# --- Ctrl-C and SIGTERM: one line, exit status 128 + signal, a usable checkpoint ---------


@pytest.mark.parametrize(
    ("signum", "status", "cause"),
    [(signal.SIGINT, 130, "Ctrl-C (SIGINT)"), (signal.SIGTERM, 143, "SIGTERM")],
)
def test_an_interrupted_trainer_says_one_line_and_resumes(cache, tmp_path, signum, status, cause):
    """The signal goes to the trainer's whole process group, as a terminal's Ctrl-C does."""
    command = trainer_command(cache, tmp_path, epochs=40)
    trainer = subprocess.Popen(
        command,
        env=env_without_supervisor(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for line in trainer.stdout:
        if "epoch 2/40" in line:
            break
    wait_for(lambda: (tmp_path / "ckpt/last.pt").exists(), 30, "the first checkpoint")
    os.killpg(trainer.pid, signum)
    rest, stderr = trainer.communicate(timeout=120)
    assert trainer.returncode == status, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    epoch = checkpoint_epoch(tmp_path / "ckpt/last.pt")
    assert 1 <= epoch < 40 and "completed" not in rest
    assert lines[0].startswith(f"amsgrad-repro train: interrupted ({cause}) while ")
    assert "while training toy/amsgrad/1 " in lines[0]
    assert f"last checkpoint {tmp_path / 'ckpt/last.pt'} (after epoch {epoch}," in lines[0]
    assert lines[0].endswith("a rerun resumes from it")
    resumed = subprocess.run(
        command, env=env_without_supervisor(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming after epoch {epoch}" in resumed.stdout
    record = json.loads((tmp_path / "run/run.json").read_text())
    assert record["resumed_from_epoch"] == epoch and record["epochs_completed"] == 40


def test_a_signal_during_a_checkpoint_write_waits_for_the_write():
    """CI once sent Ctrl-C inside ``torch.save``: its zip writer then failed with an
    unrelated RuntimeError (a traceback, exit 1). The write now finishes first, and the
    pending signal interrupts right after it."""
    reached_after_write = []
    with pytest.raises(KeyboardInterrupt), supervision.interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # a real delivery would have interrupted by now
        reached_after_write.append(True)
    assert reached_after_write == [True]


def test_a_checkpoint_interrupted_mid_write_is_complete(tmp_path, monkeypatch):
    real_save = torch.save

    def save_with_ctrl_c(payload, handle):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        real_save(payload, handle)

    monkeypatch.setattr(torch, "save", save_with_ctrl_c)
    path = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"epoch": 3, "step": 30}, "fingerprint")
    assert checkpoint.load(path, "fingerprint")["epoch"] == 3


def test_an_error_raised_while_handling_an_interrupt_is_still_an_interrupt():
    def clean_up_fails():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("unexpected pos 3136 vs 3030") from None

    with pytest.raises(RuntimeError) as caught:
        clean_up_fails()
    # `from None` hides the context from the traceback but keeps it on the error
    assert isinstance(supervision.interruption_in(caught.value), KeyboardInterrupt)
    assert supervision.interruption_in(RuntimeError("a real crash")) is None


def test_a_command_interrupted_before_it_runs_says_one_line(tmp_path):
    """Interrupted while importing (no job on the stack yet, no checkpoint folder)."""
    command = [sys.executable, "-m", "amsgrad_repro.cli", "optimizers"]
    proc = subprocess.Popen(
        command, env=env_without_supervisor(), stderr=subprocess.PIPE, text=True,
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:  # it finished first: nothing to check on this machine
        pytest.skip("the command ended before the signal")
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) <= 1, stderr


# --- a job ends with the Snakemake that started it ----------------------------------------

# Starts one job the way Snakemake's local executor does (``bash -c`` in a thread-free
# Popen, output redirected to the log), names itself the supervisor, and waits.
STAND_IN = """
import subprocess, sys
from amsgrad_repro import supervision
supervision.name_supervisor()
job = subprocess.Popen("set -euo pipefail; " + sys.argv[1], shell=True, executable="/bin/bash")
print(job.pid, flush=True)
job.wait()
"""


def trainer_pid(checkpoint_dir: Path, timeout: float = 60) -> int:
    """The trainer holding the run (its lock file names it)."""
    path = checkpoint_dir / TRAINER_LOCK
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout, "the trainer's lock")
    return int(json.loads(path.read_text())["pid"])


def test_a_job_ends_when_its_snakemake_is_killed_and_resumes(cache, tmp_path):
    command = trainer_command(cache, tmp_path, epochs=400)
    log = tmp_path / "job.log"
    shell = " ".join(f"'{word}'" for word in command) + f" > '{log}' 2>&1"
    stand_in = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, shell], env=env_without_supervisor(),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    shell_pid = int(stand_in.stdout.readline())
    pid = trainer_pid(tmp_path / "ckpt")
    assert supervision.parent_of(pid) == shell_pid  # the job is the shell's child
    wait_for(lambda: (tmp_path / "ckpt/last.pt").exists(), 60, "the first checkpoint")
    stand_in.send_signal(signal.SIGKILL)
    stand_in.wait()
    took = wait_for(lambda: not alive(pid), EXIT_WITHIN_S, "the orphaned trainer's exit")
    epoch = checkpoint_epoch(tmp_path / "ckpt/last.pt")
    assert epoch < 400 and not (tmp_path / "run/run.json").exists()
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith(
        f"amsgrad-repro train: interrupted (the Snakemake that started it (pid {stand_in.pid})"
        " is gone) while training toy/amsgrad/1 "
    ), last
    assert "Traceback" not in log.read_text()
    print(f"orphaned trainer exited {took:.2f} s after its supervisor's SIGKILL")
    wait_for(lambda: not alive(shell_pid), 10, "the job's shell")
    # The checkpoint it left is resumed (and the rerun stopped there: that is all we check).
    rerun = subprocess.Popen(
        command, env=env_without_supervisor(), stdout=subprocess.PIPE, text=True
    )
    first = rerun.stdout.readline()
    rerun.terminate()
    rerun.communicate(timeout=60)
    assert first.strip() == f"toy/amsgrad/1: resuming after epoch {epoch} (step {epoch * 10})"


def test_a_job_started_by_hand_is_not_supervised_by_a_stale_variable():
    """The variable names a process that is not an ancestor (a copied environment, another
    host's pid): nothing is watched, the job runs normally."""
    code = "from amsgrad_repro import supervision; print(supervision.supervise())"
    unrelated = subprocess.Popen(["sleep", "30"])
    try:
        for value in (str(unrelated.pid), "1", "not-a-pid", ""):
            env = {**env_without_supervisor(), supervision.SUPERVISOR_ENV: value}
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True
            )
            assert out.stdout.strip() == "None", (value, out.stderr)
        env = {**env_without_supervisor(), supervision.SUPERVISOR_ENV: str(os.getpid())}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == str(os.getpid()), out.stderr  # an ancestor: watched
    finally:
        unrelated.kill()
        unrelated.wait()


def test_ancestors_are_read_from_proc():
    chain = supervision.ancestors()
    assert chain and chain[0] == os.getppid()
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert supervision.ancestors(child.pid)[0] == os.getpid()
        assert supervision.parent_of(child.pid) == os.getpid()
    finally:
        child.kill()
        child.wait()
    assert supervision.parent_of(child.pid) is None  # reaped: gone


# --- the lock a killed Snakemake leaves -------------------------------------------------

FAKE_SNAKEMAKE = "import time\ntime.sleep(60)\n"


def leave_lock(workdir: Path) -> Path:
    """What a SIGKILLed Snakemake leaves: its lock files (persistence/file.py format)."""
    locks = workdir / LOCKS
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text(f"{workdir}/data/cache/x.pt\n")
    (locks / "0.output.lock").write_text(f"{workdir}/results/runs/a/b/0/run.json\n")
    return locks


@pytest.fixture
def running_snakemake(tmp_path: Path):
    """A process whose command line is a Snakemake's (``python .../bin/snakemake``),
    working in ``tmp_path/wf``."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    script = tmp_path / "bin" / "snakemake"
    script.parent.mkdir()
    script.write_text(FAKE_SNAKEMAKE)
    proc = subprocess.Popen([sys.executable, str(script), "--cores", "1"], cwd=workdir)
    wait_for(lambda: len(snakemake_lock._argv(proc.pid)) == 4, 10, "the stand-in's start")
    yield workdir, proc.pid
    proc.kill()
    proc.wait()


def test_a_stale_lock_is_removed_with_one_line(tmp_path, capsys):
    workdir = tmp_path / "wf"
    locks = leave_lock(workdir)
    dry = snakemake_lock.check(workdir, dry_run=True)
    assert locks.is_dir() and "the next run removes it by itself" in dry
    assert not (workdir / RECORDS).exists()  # a dry run does not lock: no record
    line = snakemake_lock.check(workdir)
    assert not locks.exists()
    assert line.startswith("amsgrad-repro: removed .snakemake/locks, left by a Snakemake")
    assert capsys.readouterr().err.splitlines() == [dry, line]
    record = json.loads((workdir / RECORDS / f"{platform.node()}.{os.getpid()}.json").read_text())
    assert record["pid"] == os.getpid()


def test_a_lock_is_kept_while_a_snakemake_of_the_folder_runs(running_snakemake):
    workdir, pid = running_snakemake
    locks = leave_lock(workdir)
    line = snakemake_lock.check(workdir)
    assert locks.is_dir()
    assert f"pid {pid} " in line and f"(kill {pid}), then rerun" in line
    with pytest.raises(LockHeld, match=f"kill {pid}"):
        snakemake_lock.check(workdir, unlock=True)
    # Another folder's Snakemake does not count.
    other = workdir.parent / "other"
    leave_lock(other)
    assert "removed" in snakemake_lock.check(other)


def test_another_hosts_snakemake_keeps_the_lock_until_make_unlock(tmp_path):
    workdir = tmp_path / "wf"
    locks = leave_lock(workdir)
    records = workdir / RECORDS
    records.mkdir(parents=True)
    elsewhere = {"pid": 4242, "host": "login2", "boot": "x", "start": 1, "command": "snakemake"}
    (records / "login2.4242.json").write_text(json.dumps(elsewhere))
    # This host's record of a process that is gone (a pid that never ran) is dropped.
    gone = {**elsewhere, "host": platform.node(), "pid": 2**22 + 7}
    (records / f"{platform.node()}.{2**22 + 7}.json").write_text(json.dumps(gone))
    line = snakemake_lock.check(workdir)
    assert locks.is_dir() and "pid 4242 on host login2" in line
    assert "on login2: kill 4242" in line and "type `make unlock`" in line
    assert not (records / f"{platform.node()}.{2**22 + 7}.json").exists()
    snakemake_lock.check(workdir, unlock=True)  # the user says it is gone
    assert not records.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/python3.11", "/venv/bin/snakemake", "--cores", "2"], True),
        (["snakemake", "-n"], True),
        (["/usr/bin/python3", "-m", "snakemake", "--cores", "2"], True),
        (["python", "/x/site-packages/snakemake/__main__.py"], True),
        (["less", "snakemake"], False),
        (["/venv/bin/python3.11", "/venv/bin/amsgrad-repro", "report", "--", "snakemake"], False),
        (["bash", "-c", "snakemake --cores 1"], False),
        ([], False),
    ],
)
def test_what_counts_as_a_snakemake(argv, expected):
    assert snakemake_lock.is_snakemake(argv) is expected


def test_the_working_directory_of_a_snakemake(tmp_path):
    proc = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        assert snakemake_lock.working_directory(proc.pid, ["snakemake"]) == tmp_path.resolve()
        (tmp_path / "wf").mkdir()
        for argv in (["snakemake", "-d", "wf"], ["snakemake", "--directory=wf"]):
            assert snakemake_lock.working_directory(proc.pid, argv) == tmp_path.resolve() / "wf"
    finally:
        proc.kill()
        proc.wait()


# --- the real thing: make run and Snakemake killed with SIGKILL -------------------------


def scratch_with_make(root: Path) -> Path:
    """A scratch project (tests.test_train_pipeline) with the Makefile, and a .venv whose
    bin/ links to this interpreter's, installed as far as make can tell."""
    workdir = scratch_workflow(root)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, workdir / name)
    bin_dir = workdir / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in Path(sys.executable).parent.iterdir():
        (bin_dir / tool.name).symlink_to(tool)
    (workdir / ".venv" / ".installed").touch()
    return workdir


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.slow
def test_killing_make_or_snakemake_ends_the_trainer_and_the_next_run_says_so(tmp_path):
    workdir = scratch_with_make(tmp_path)
    target = "results/runs/mlp/amsgrad/0/run.json"
    config = ["--config", "scale=smoke", "tasks={mlp: {epochs: 150}}"]
    checkpoints = workdir / "results/checkpoints/mlp/amsgrad/stacked"
    job_log = workdir / "results/logs/train/mlp/amsgrad/stacked.log"
    env = {**snakemake_env(), "OMP_NUM_THREADS": "1"}
    env.pop(supervision.SUPERVISOR_ENV, None)

    # 1. kill -9 of `make run`: its Snakemake and the trainer end; the checkpoint stays.
    out = tmp_path / "make.err"
    with out.open("w") as err:
        make = subprocess.Popen(
            ["make", "run", "CORES=1", f"SNAKEMAKE_ARGS={target} {config[0]} {config[1]} "
             f"'{config[2]}'"],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        trainer = trainer_pid(checkpoints, 300)
        snakemake = supervision.ancestors(trainer)[1]  # trainer <- bash <- snakemake
        assert snakemake_lock.is_snakemake(snakemake_lock._argv(snakemake))
        wait_for(lambda: (checkpoints / "last.pt").exists(), 120, "the first checkpoint")
        make.kill()
        make.wait()
        took = wait_for(lambda: not alive(trainer), EXIT_WITHIN_S, "the trainer's exit")
        wait_for(lambda: not alive(snakemake), EXIT_WITHIN_S, "Snakemake's exit")
    print(f"after make's SIGKILL the trainer exited within {took:.2f} s")
    assert f"the make that started this Snakemake (pid {make.pid}) is gone" in read(out)
    assert (
        f"interrupted (the Snakemake that started it (pid {snakemake}) is gone)"
        in read(job_log).strip().splitlines()[-1]
    )
    assert (workdir / LOCKS).is_dir()  # left behind, as by any SIGKILLed Snakemake
    epoch = checkpoint_epoch(checkpoints / "last.pt")
    assert 1 <= epoch < 150

    # 2. The next Snakemake removes the lock with one line and resumes; kill -9 it.
    out = tmp_path / "snakemake.err"
    with out.open("w") as err:
        run = subprocess.Popen(
            snakemake_command(target, *config), cwd=workdir, env=env,
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        wait_for(lambda: "resuming after epoch" in read(job_log), 120, "the resumed job")
        trainer = trainer_pid(checkpoints)
        run.kill()
        run.wait()
        took = wait_for(lambda: not alive(trainer), EXIT_WITHIN_S, "the trainer's exit")
    print(f"after Snakemake's SIGKILL the trainer exited within {took:.2f} s")
    ours = [line for line in read(out).splitlines() if line.startswith("amsgrad-repro")]
    assert len(ours) == 1 and ours[0].startswith("amsgrad-repro: removed .snakemake/locks")
    assert "Directory cannot be locked" not in read(out)
    assert f"resuming after epoch {epoch} " in read(job_log)
    resumed_at = checkpoint_epoch(checkpoints / "last.pt")

    # 3. And the run after that finishes from the last checkpoint.
    done = run_snakemake(workdir, target, *config, env=env)
    assert "amsgrad-repro: removed .snakemake/locks" in done.stderr
    record = json.loads((workdir / target).read_text())
    assert record["resumed_from_epoch"] == resumed_at and record["epochs_completed"] == 150
