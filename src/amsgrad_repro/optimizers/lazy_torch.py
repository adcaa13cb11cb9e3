"""``torch``, imported on first use.

Optimizer declarations are read by processes that never train (the Snakemake process
validating a configuration, the synthetic jobs running the compiled kernel); importing
torch costs them 1.7 s each. The family modules therefore reach torch through this proxy,
which imports it at the first attribute access and then caches each attribute it served, so
the tensor updates pay one dictionary lookup per operation, as with a plain module.
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self._name), attribute)
        setattr(self, attribute, value)
        return value


torch: Any = _LazyModule("torch")
