"""A real one-node SLURM cluster for tests: munged, slurmctld and slurmd from Debian's
packages, started in a scratch folder with a ``gpu`` GRES backed by fake character devices
(``mknod``) so that jobs can request and be allocated GPUs on a machine without any.

Usage (also from a shell: ``python -m tests.slurm.cluster start DIR`` / ``stop DIR``)::

    with SlurmCluster(tmp_path) as cluster:
        env = cluster.env()      # SLURM_CONF for sbatch/squeue/scontrol
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "munged")
MUNGE_PID_FILE = Path("/run/munge/munged.pid")  # munged's default --pid-file
# The default path, not a scratch one: the SLURM executor's job step strips every SLURM_*
# variable (SLURM_CONF included) before its inner ``srun``, which then only finds the
# configuration here (as on a real cluster, where it lives in /etc/slurm or comes from
# slurmctld in configless mode).
CONF_DIR = Path("/etc/slurm")
FAKE_GPUS = 2
NVIDIA_MAJOR = 195


def slurm_available() -> str | None:
    """None when the daemons and tools exist, else the reason they do not."""
    missing = [
        tool
        for tool in (*DAEMONS, "sbatch", "squeue", "scontrol")
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    ]
    if missing:
        return f"SLURM is not installed here (missing: {', '.join(missing)})"
    if os.geteuid() != 0:
        return "starting slurmd with fake GPU devices needs root"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie of another parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


class SlurmCluster:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.conf = CONF_DIR / "slurm.conf"
        self.backup = self.root / "etc-slurm-backup"

    # --- configuration ---------------------------------------------------------------
    def write_config(self) -> None:
        """Write slurm.conf and gres.conf to /etc/slurm, keeping any site files aside
        (restored by :meth:`stop`)."""
        CONF_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):
            if (CONF_DIR / name).exists() and not (self.backup / name).exists():
                self.backup.mkdir(parents=True, exist_ok=True)
                shutil.move(CONF_DIR / name, self.backup / name)
        for sub in ("state", "spool", "dev", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for index in range(FAKE_GPUS):
            device = self.root / "dev" / f"nvidia{index}"
            if not device.exists():
                os.mknod(device, 0o666 | 0o020000, os.makedev(NVIDIA_MAJOR, index))
        cpus = os.cpu_count() or 2
        r = self.root
        gres = f"Gres=gpu:fake:{FAKE_GPUS}"
        self.conf.write_text(
            f"""ClusterName=amsgrad-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
MpiDefault=none
ReturnToService=2
MinJobAge=86400
InactiveLimit=0
KillWait=10
Waittime=0
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 {gres} State=UNKNOWN
PartitionName=gpu Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        )
        (CONF_DIR / "gres.conf").write_text(
            f"NodeName={self.host} Name=gpu Type=fake File={r}/dev/nvidia[0-{FAKE_GPUS - 1}]\n"
        )

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with SLURM's tools on PATH."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
        return env

    # --- daemons ---------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        self.write_config()
        self._start_munge()
        env = self.env()
        subprocess.run(["slurmctld", "-f", str(self.conf), "-i"], env=env, check=True)
        subprocess.run(["slurmd", "-f", str(self.conf)], env=env, check=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.scontrol("show", "node", self.host, check=False)
            if "State=IDLE" in state:
                return
            time.sleep(0.5)
        raise RuntimeError(f"slurmd did not become idle:\n{state}\n{self.logs()}")

    def _start_munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            # Debian's package makes the key at install time; a stripped image may not.
            subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "--create"], check=True)
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        # The daemon this cluster started, by the pid it wrote: stop() ends that one only.
        deadline = time.time() + 10
        while not MUNGE_PID_FILE.exists() and time.time() < deadline:
            time.sleep(0.1)
        self.root.joinpath("munge.started").write_text(MUNGE_PID_FILE.read_text().strip())

    def scontrol(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["scontrol", *args], env=self.env(), capture_output=True, text=True, check=check
        )
        return result.stdout + result.stderr

    def job_with_comment(self, comment: str) -> str:
        """The id of the queued or running job whose comment is ``comment`` (the SLURM
        executor plugin comments each job with its rule and wildcards)."""
        listing = subprocess.run(
            ["squeue", "--noheader", "--format=%i %k"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in listing.splitlines():
            job_id, _, job_comment = line.strip().partition(" ")
            if job_comment.strip() == comment:
                return job_id
        raise LookupError(f"no job with comment {comment!r} in:\n{listing}")

    def logs(self) -> str:
        texts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.exists():
                texts.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-30:]))
        return "\n".join(texts)

    def _daemon_pid(self, name: str) -> int | None:
        """The pid in ``name``'s pid file, or None once the daemon has removed it (a
        daemon deletes its pid file as it exits, so the file can vanish between any
        two looks at it)."""
        try:
            return int((self.root / f"{name}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self) -> None:
        """SIGTERM both daemons, wait up to 30 s for them to exit, SIGKILL what is left."""
        pids = [pid for name in ("slurmd", "slurmctld") if (pid := self._daemon_pid(name))]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 30
        while any(map(_alive, pids)) and time.time() < deadline:
            time.sleep(0.2)
        for pid in filter(_alive, pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        started = self.root / "munge.started"
        if started.exists() and started.read_text().strip().isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(started.read_text()), signal.SIGTERM)
        self._restore_config()

    def _restore_config(self) -> None:
        for name in ("slurm.conf", "gres.conf"):
            (CONF_DIR / name).unlink(missing_ok=True)
            if (self.backup / name).exists():
                shutil.move(self.backup / name, CONF_DIR / name)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    action, folder = sys.argv[1], Path(sys.argv[2])
    cluster = SlurmCluster(folder)
    if action == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
