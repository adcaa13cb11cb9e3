"""Shared test fixtures. Tests are offline and hermetic; they run on one CPU thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.set_num_threads(1)


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
