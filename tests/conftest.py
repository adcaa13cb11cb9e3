"""Shared test fixtures. Tests are offline and hermetic; they run on one CPU thread
(``AMSGRAD_TEST_THREADS`` to change it).

The tiers (docs/testing.md): ``make test-fast`` runs the tests without the ``slow`` mark,
which start no Snakemake; ``make test`` runs all of them on parallel workers
(pytest-xdist, ``--dist loadgroup``). Two things here keep that honest:

- a test that starts Snakemake without the ``slow`` mark fails (``GuardedPopen``), so the
  fast tier cannot quietly grow a pipeline;
- slow tests that share a module-scoped fixture of their module (a pipeline run, a
  cluster) are sent to one worker (an ``xdist_group`` named after the module), so the
  fixture is built once, not once per worker.

The smoke pipeline that several modules only read is built once per session
(``smoke_pipeline``), under a file lock that the workers share.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.pipeline import built_once, copy_workflow, run_snakemake

# A suite started in the background of a shell without job control (``cmd &`` in a script)
# inherits SIGINT ignored (POSIX), and Python then never turns Ctrl-C into
# KeyboardInterrupt: the interrupt tests would fail for how the suite was started, not for
# what they test. Restore the default handler here, in every worker; the processes the
# tests start inherit the default then (exec resets a handled signal).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO_ROOT = Path(__file__).resolve().parents[1]

# Torch's intra-op threads in the test process: 1 unless AMSGRAD_TEST_THREADS says otherwise
# (the numerical tests are checked with 1 and 2: a sum split over threads rounds in another
# order, which their tolerances must allow). OMP_NUM_THREADS alone does not reach this
# process's torch once set_num_threads runs, so the variable sets both.
TEST_THREADS = int(os.environ.get("AMSGRAD_TEST_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(TEST_THREADS))


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.set_num_threads(TEST_THREADS)


@pytest.fixture(autouse=True)
def _ieee_subnormals():
    """A trainer run in-process turns on flush-to-zero for the whole process
    (``performance.flush_denormal``); put IEEE subnormals back so that a later test's
    numerics do not depend on which tests ran before it."""
    yield
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


# --- the slow mark: every test that starts Snakemake carries it -------------------------

# Make targets that start Snakemake (the Makefile's run, report, push, pull, unlock, lint).
_MAKE_TARGETS_WITH_SNAKEMAKE = {"run", "report", "push", "pull", "unlock", "lint", "test"}


def starts_snakemake(args: str | Sequence[str | os.PathLike]) -> bool:
    """Whether a command line starts the real Snakemake: ``snakemake ...``, ``python -m
    snakemake``, a Python running the installed ``snakemake`` script, or a ``make`` target
    that does. A stand-in script that is merely *named* snakemake (tests of the lock
    handling start one) does not count."""
    argv = shlex.split(args) if isinstance(args, str) else [os.fspath(a) for a in args]
    if not argv:
        return False
    program = Path(argv[0]).name
    if program == "snakemake":
        return True
    if program == "make":  # make -n prints the recipe and runs nothing
        dry = {"-n", "--dry-run", "--just-print", "--recon"} & set(argv[1:])
        return not dry and bool(_MAKE_TARGETS_WITH_SNAKEMAKE & set(argv[1:]))
    if not program.startswith("python") or len(argv) < 2:
        return False
    if argv[1:3] == ["-m", "snakemake"]:
        return True
    installed = shutil.which("snakemake", path=str(Path(sys.executable).parent))
    return installed is not None and Path(argv[1]).resolve() == Path(installed).resolve()


_current_item: pytest.Item | None = None
_violations: dict[str, list[str]] = {}


class GuardedPopen(subprocess.Popen):
    """``subprocess.Popen`` that refuses to start Snakemake for a test without the slow
    mark (``subprocess.run`` and friends go through it too)."""

    def __init__(self, args, *positional, **keywords):
        item = _current_item
        if item is not None and item.get_closest_marker("slow") is None and starts_snakemake(args):
            shown = args if isinstance(args, str) else " ".join(map(os.fspath, args))
            message = (
                f"{item.nodeid} starts Snakemake ({shown[:200]}) but is not marked slow: "
                "add @pytest.mark.slow (the fast tier, make test-fast, runs no Snakemake)"
            )
            _violations.setdefault(item.nodeid, []).append(message)
            raise RuntimeError(message)
        super().__init__(args, *positional, **keywords)


def pytest_configure(config: pytest.Config) -> None:
    subprocess.Popen = GuardedPopen  # type: ignore[misc]
    config.pluginmanager.register(_GroupInNodeId(), "amsgrad-repro-xdist-group-in-node-id")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """Module fixtures are built in the setup of the first test that needs them, so the
    guard covers setup, call and teardown."""
    global _current_item
    _current_item = item
    try:
        return (yield)
    finally:
        _current_item = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """A violation fails the test even where the test swallowed the RuntimeError."""
    report = yield
    if call.when == "teardown" and item.nodeid in _violations and report.passed:
        report.outcome = "failed"
        report.longrepr = "\n".join(_violations.pop(item.nodeid))
    return report


# --- parallel workers: tests that share a module fixture run on one worker ---------------


def _module_fixtures(item: pytest.Item) -> list[str]:
    """Module-scoped fixtures this test uses that are defined in its own module (the
    expensive, shared ones: a pipeline run, a cluster, a repository that pushed)."""
    info = getattr(item, "_fixtureinfo", None)
    module = getattr(item, "module", None)
    if info is None or module is None:
        return []
    names = []
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name) or ()
        for definition in definitions:
            if (
                definition.scope == "module"
                and definition.baseid.split("::")[0] == (item.nodeid.split("::")[0])
            ):
                names.append(name)
    return names


# Session fixtures built once (``built_once``) whose users form one group: one worker
# builds, the others go on with other tests instead of waiting on the lock.
SHARED_SESSION_FIXTURES = ("smoke_pipeline",)
# The groups that take longest (docs/testing.md), handed out first: the SLURM cluster
# mostly waits on its scheduler, so it overlaps the others best from the start.
LONGEST_GROUPS = ("tests/test_slurm.py", "smoke_pipeline", "tests/test_share.py")


def xdist_group_of(item: pytest.Item) -> str | None:
    """The worker group of a test: the shared session fixture it uses, else its module if
    it is slow and uses a module fixture of its own (a pipeline run, a cluster), else none
    (any worker). The fast tests' module fixtures (a miniature dataset, a few seconds of
    training) are cheaper built once per worker than by holding, say, test_stacked.py's
    forty trainings on one worker."""
    info = getattr(item, "_fixtureinfo", None)
    used = set(info.names_closure) if info is not None else set()
    for name in SHARED_SESSION_FIXTURES:
        if name in used:
            return name
    if item.get_closest_marker("slow") is not None and _module_fixtures(item):
        return item.nodeid.split("::")[0]
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group marks are added before xdist reads them (it appends the group to the node
    id: ``tests/test_slurm.py::test_the_cluster_is_stopped@tests/test_slurm.py``), and the
    slow tests go first (with ``--no-loadscope-reorder``, the order in which xdist hands
    out work): the long pipelines start at once, the many short tests fill in at the end."""
    groups = {}
    for item in items:
        group = xdist_group_of(item)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
    # The longest groups first, then slow before fast, a group before single tests (a big
    # unit handed out last leaves the other workers idle); a group stays together, so that
    # its module fixture is built once even without xdist.
    slow = {groups[i.nodeid] or i.nodeid for i in items if i.get_closest_marker("slow")}

    def order(item: pytest.Item) -> tuple:
        group = groups[item.nodeid]
        longest = LONGEST_GROUPS.index(group) if group in LONGEST_GROUPS else len(LONGEST_GROUPS)
        return (longest, (group or item.nodeid) not in slow, group is None)

    items.sort(key=order)


class _GroupInNodeId:
    """What ``--dist loadgroup`` needs and pytest-xdist 3.8.0 no longer achieves on pytest
    9.2: a worker appends each test's group to its node id (``...::test@group``), and the
    scheduler sends the tests of one group to one worker. xdist assigns ``item._nodeid``,
    which pytest 9.2's ``Item.nodeid`` no longer reads (it reads ``item._id``), so every
    test became a group of its own and each worker built the shared fixtures again. Runs
    after xdist's own hook and does nothing where that one worked."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items) -> None:
        if not getattr(config.option, "loadgroup", False):  # set on --dist loadgroup workers
            return
        from _pytest.nodeid import NodeId

        for item in items:
            names = sorted(
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            )
            if names and "@" not in item.nodeid:
                item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(dict.fromkeys(names))}")


# --- results built once per session, shared by the workers -------------------------------


# The shipped smoke preset, the tuning stage included: every stage, every figure, the
# grids, the claims and the report.
SMOKE_PIPELINE = ("--config", "scale=smoke", "tune=True")


def _build_smoke_pipeline(workdir: Path) -> None:
    copy_workflow(workdir)
    # 25 min measured on 2 cores while other sessions' suites kept the load at 6-14
    # (docs/testing.md): the timeout is a hang's safety net, not a speed limit.
    run_snakemake(workdir, *SMOKE_PIPELINE, timeout=3600)
    run_snakemake(workdir, "--report", "results/report.html", *SMOKE_PIPELINE)


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> Path:
    """The whole smoke pipeline (``SMOKE_PIPELINE``) and its report, run once per session.
    Read it only; a test that runs Snakemake in it or changes it takes a ``copy_run``."""
    return built_once(tmp_path_factory, "smoke-pipeline", _build_smoke_pipeline)
