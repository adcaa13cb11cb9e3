"""Shared test fixtures. Tests are offline and hermetic; they run on one CPU thread
(``AMSGRAD_TEST_THREADS`` to change it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
