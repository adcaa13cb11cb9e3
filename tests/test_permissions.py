"""Outputs honour the umask: on a cluster's shared file system the group reads (and with
umask 002 writes) results, caches and raw data. ``tempfile.mkstemp`` alone gives 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from amsgrad_repro.io import atomic_open, current_umask
from tests.miniatures import write_idx_dataset
from tests.pipeline import prepare_data_command


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, expected", [(0o002, 0o664), (0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_get_the_mode_the_umask_allows(tmp_path: Path, umask, expected) -> None:
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        with atomic_open(tmp_path / "out.txt") as handle:
            handle.write("x")
        with atomic_open(tmp_path / "out.bin", "wb") as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "out.txt") == expected and mode(tmp_path / "out.bin") == expected


def test_data_stage_outputs_are_group_writable_under_umask_002(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    result = subprocess.run(
        prepare_data_command(spec, tmp_path, tmp_path / "data/cache/mnist.pt"),
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o002),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    files = [tmp_path / "data/cache/mnist.pt", *sorted((tmp_path / "data/raw/mnist").iterdir())]
    assert len(files) == 5
    assert {path.name: oct(mode(path)) for path in files} == {
        path.name: oct(0o664) for path in files
    }


# A stand-in for `python -m snakemake`: writes the file after --report in two halves,
# checking between them that the target still holds the old report (the write is staged).
FAKE_SNAKEMAKE = """
import pathlib, sys
staged = pathlib.Path(sys.argv[sys.argv.index("--report") + 1])
target = pathlib.Path(sys.argv[1])
staged.write_text("<html>new ")
assert target.read_text() == "old report", "the target changed before the report was done"
with staged.open("a") as handle:
    handle.write("report</html>")
print(f"Report created: {staged}.")
sys.exit(int(sys.argv[2]))
"""


def this_checkout_env() -> dict[str, str]:
    """The environment with this checkout's package first on PYTHONPATH (prepended: the
    venv's editable install may point at another checkout)."""
    src = str(Path(__file__).parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def build_report_in_subprocess(tmp_path: Path, umask: int, status: int) -> str:
    """Run report.build_report under ``umask`` in a fresh interpreter (this checkout's
    package first on its path) with the stand-in Snakemake; returns what it printed."""
    script = tmp_path / "fake_snakemake.py"
    script.write_text(FAKE_SNAKEMAKE)
    target = tmp_path / "results/report.html"
    code = (
        "import sys; from pathlib import Path; from amsgrad_repro.report import build_report; "
        f"sys.exit(build_report(Path({str(tmp_path)!r}), 'results/report.html', [], "
        f"command=[sys.executable, {str(script)!r}, {str(target)!r}, '{status}']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=this_checkout_env(),
        preexec_fn=lambda: os.umask(umask),
        timeout=120,
    )
    assert result.returncode == status, result.stderr
    return result.stdout


@pytest.mark.parametrize("umask, expected", [(0o002, 0o664), (0o027, 0o640)])
def test_report_replaces_the_old_one_whole_with_the_umasks_mode(tmp_path, umask, expected):
    target = tmp_path / "results/report.html"
    target.parent.mkdir()
    target.write_text("old report")
    target.chmod(0o600)  # an old file's mode is not passed on
    printed = build_report_in_subprocess(tmp_path, umask, status=0)
    assert target.read_text() == "<html>new report</html>"
    assert oct(mode(target)) == oct(expected)
    assert "Report created: results/report.html." in printed, printed  # not the staged path
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_a_failed_report_leaves_the_old_one_and_no_staged_file(tmp_path):
    target = tmp_path / "results/report.html"
    target.parent.mkdir()
    target.write_text("old report")
    build_report_in_subprocess(tmp_path, 0o022, status=3)
    assert target.read_text() == "old report"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


@pytest.mark.slow
def test_snakemake_writes_its_report_through_the_staged_path(tmp_path):
    """The real `snakemake --report` accepts the staged name (it checks the suffix) and the
    result lands at the target with the umask's mode (a one-rule workflow, about 5 s)."""
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: report("a.txt", category="x")\n    shell: "echo hi > {output}"\n'
    )
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "-q"],
        cwd=tmp_path, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    code = (
        "import sys; from pathlib import Path; from amsgrad_repro.report import build_report; "
        f"sys.exit(build_report(Path({str(tmp_path)!r}), 'out/report.html', []))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
        env=this_checkout_env(), preexec_fn=lambda: os.umask(0o002), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = tmp_path / "out/report.html"
    assert "a.txt" in report.read_text() and oct(mode(report)) == oct(0o664)
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]
