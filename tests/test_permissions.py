"""Outputs honour the umask: on a cluster's shared file system the group reads (and with
umask 002 writes) results, caches and raw data. ``tempfile.mkstemp`` alone gives 0600."""

from __future__ import annotations

import os
import stat
import subprocess
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
