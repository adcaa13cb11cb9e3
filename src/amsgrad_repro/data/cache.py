"""The converted dataset cache: one ``data/cache/<name>.pt`` file per dataset.

The file is a ``torch.save`` dict of uint8/int64 tensors plus ``meta``. Loading it with
``torch.load(mmap=True)`` maps the tensors instead of reading them, so a training job opens
even CelebA's 202,599 images in milliseconds. The file is written under a temporary name and
renamed into place, so a cache that exists is complete; an interrupted conversion leaves
nothing a later run would trust.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amsgrad_repro.io import atomic_open

ARRAYS = ("train_x", "train_y", "test_x", "test_y", "val_index")
SUFFIX = ".pt"
FORMAT_VERSION = 1


class CacheError(RuntimeError):
    """A cache is missing or unreadable; the message says how to rebuild it."""


@dataclass
class DatasetTensors:
    """A dataset as tensors: images uint8 [N, C, H, W], labels int64, and the indices of
    a fixed validation split inside the training set."""

    train_x: Any
    train_y: Any
    test_x: Any
    test_y: Any
    val_index: Any
    meta: dict[str, Any]

    def to(self, device: Any) -> DatasetTensors:
        fields = {name: getattr(self, name).to(device) for name in ARRAYS}
        return DatasetTensors(**fields, meta=self.meta)


def cache_file(path: str | Path) -> Path:
    """The cache file for ``path``: ``data/cache/<name>.pt`` itself, or the dataset's name
    without the suffix (``data/cache/<name>``, also written ``data/cache/<name>/meta.json``),
    so callers may name a cache either way."""
    path = Path(path)
    if path.name == "meta.json":
        path = path.parent
    return path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)


def load_cache(path: str | Path, device: str = "cpu") -> DatasetTensors:
    """Load a converted dataset as torch tensors on ``device`` (memory-mapped on the CPU)."""
    import torch

    file = cache_file(path)
    if not file.is_file():
        raise CacheError(
            f"{file}: no dataset cache; run the data stage first, e.g. snakemake --cores 1 {file}"
        )
    try:
        payload = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except (RuntimeError, OSError, EOFError) as error:
        raise CacheError(f"{file}: unreadable cache ({error}); delete it and rebuild") from error
    missing = [name for name in (*ARRAYS, "meta") if name not in payload]
    if missing or payload.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"{file}: not a version-{FORMAT_VERSION} cache (lacks {missing})")
    tensors = {name: payload[name] for name in ARRAYS}
    if device != "cpu":
        tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
    return DatasetTensors(**tensors, meta=payload["meta"])


class CacheWriter:
    """Collects a dataset's arrays and writes the cache file atomically on commit.

    Arrays too large for memory (CelebA) are filled in place through :meth:`memmap`, which
    keeps them in a scratch folder beside the cache until commit."""

    def __init__(self, path: str | Path) -> None:
        self.path = cache_file(path)
        self.scratch = self.path.with_name(f".{self.path.name}.partial")
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, array: np.ndarray) -> None:
        self.arrays[name] = np.ascontiguousarray(array)

    def memmap(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A writable on-disk array, for conversions that stream."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(self.scratch / f"{name}.npy", "w+", dtype, shape)
        self.arrays[name] = array
        return array

    def commit(self, meta: dict[str, Any]) -> Path:
        """Write the cache file (``meta`` as plain JSON types, so weights-only loading
        accepts it) and drop the scratch folder."""
        import torch

        missing = [name for name in ARRAYS if name not in self.arrays]
        if missing:
            raise ValueError(f"cache {self.path.name}: arrays {missing} were never written")
        payload: dict[str, Any] = {
            name: torch.from_numpy(np.asarray(array)) for name, array in self.arrays.items()
        }
        payload["meta"] = json.loads(json.dumps(meta, default=_plain))
        payload["format_version"] = FORMAT_VERSION
        try:
            with atomic_open(self.path, "wb") as handle:
                torch.save(payload, handle)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def validation_split(num_train: int, size: int, seed: int) -> np.ndarray:
    """A fixed, seeded choice of ``size`` training indices held out for tuning."""
    if not 0 <= size < num_train:
        raise ValueError(f"validation size {size} must be below the {num_train} training items")
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(num_train)[:size]).astype(np.int64)
