"""The test tiers themselves (docs/testing.md): a test that starts Snakemake must carry the
slow mark, and under ``make test``'s workers the tests that share an expensive fixture
really are sent to one worker (their group in the node id, as pytest-xdist sees it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest
from tests.pipeline import REPO_ROOT


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([sys.executable, "-m", "snakemake", "--cores", "2"], True),
        ("snakemake -n --cores 1", True),
        (["/somewhere/bin/snakemake", "--report", "r.html"], True),
        ([sys.executable, str(Path(sys.executable).with_name("snakemake")), "-n"], True),
        (["make", "run", "CORES=1"], True),
        (["make", "--version"], False),
        (["make", "-n", "run", "SNAKEMAKE_ARGS=-n"], False),  # prints the recipe only
        # The lock tests' stand-in is only named snakemake.
        ([sys.executable, "/tmp/x/bin/snakemake", "--cores", "1"], False),
        ([sys.executable, "-m", "amsgrad_repro.cli", "optimizers"], False),
        (["git", "init", "-q"], False),
    ],
)
def test_what_starts_snakemake(argv, expected):
    assert conftest.starts_snakemake(argv) is expected


def test_a_test_without_the_slow_mark_cannot_start_snakemake(request):
    assert subprocess.Popen is conftest.GuardedPopen
    with pytest.raises(RuntimeError, match="starts Snakemake .* but is not marked slow"):
        subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True)
    # The refusal is also recorded to fail the test in case it swallowed the error;
    # this test expected it, so it takes the record back.
    assert conftest._violations.pop(request.node.nodeid)
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0


@pytest.mark.slow
def test_a_slow_test_may_start_snakemake():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip()


# Which group each of these tests must be in under --dist loadgroup.
EXPECTED_GROUPS = {
    "tests/test_slurm.py::test_the_cluster_is_stopped": "tests/test_slurm.py",
    "tests/test_slurm.py::test_results_equal_a_local_run": "tests/test_slurm.py",
    "tests/test_report.py::test_summary_and_tidy_tables": "smoke_pipeline",
    "tests/test_pipeline_grids.py::test_one_job_per_grid_writes_its_table": "smoke_pipeline",
    "tests/test_share.py::test_push_tracks_each_run_and_file": "tests/test_share.py",
    "tests/test_share.py::test_s3_remote_push_pull_and_clear_errors": "tests/test_share.py",
    # No module fixture: any worker.
    "tests/test_share.py::test_pull_without_tracked_results_says_so": None,
}


@pytest.mark.slow  # two pytest-xdist workers collecting four modules: about 30 s
def test_tests_that_share_a_fixture_are_one_group_in_the_workers_node_ids(tmp_path):
    """The node ids the workers report to the scheduler (``--setup-plan`` builds no
    fixture): a group is the part after ``@``, as xdist's scheduler reads it."""
    modules = sorted({nodeid.split("::")[0] for nodeid in EXPECTED_GROUPS})
    out = tmp_path / "ids.json"
    env = {**os.environ, "AMSGRAD_REPRO_XDIST_IDS": str(out)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--setup-plan", "-q", "-p", "no:cacheprovider",
         "-p", "tests.xdist_ids", "--basetemp", str(tmp_path / "inner"), *modules],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reported = json.loads(out.read_text())
    assert set(reported) == {"gw0", "gw1"}, reported.keys()
    for ids in reported.values():
        groups = {}
        for nodeid in ids:
            test, _, group = nodeid.partition("@")
            groups[test] = group or None
        for test, group in EXPECTED_GROUPS.items():
            assert groups[test] == group, (test, groups[test])
