"""Where numba keeps the compiled kernels, keyed by this package's sources.

numba's own cache notices a change to the file of the function it compiled, not to the
functions that function calls from other modules (the optimizers' scalar steps live in
``optimizers/``, the kernel in ``synthetic/``), so an edited step could run from a stale
cache. Every compiled function of the package is therefore cached under a folder named
after a hash of all the package's Python sources: any edit starts a fresh cache. A
``NUMBA_CACHE_DIR`` set by the user is respected as it is.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@cache
def source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "amsgrad-repro" / "numba" / source_hash()


def configure() -> None:
    """Call before any ``numba.njit(cache=True)`` of the package is created."""
    import numba.core.config

    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    numba.core.config.CACHE_DIR = str(cache_root())
