"""The converted dataset cache: uint8 arrays as ``.npy`` files plus ``meta.json``.

``.npy`` files memory-map, so loading is a few milliseconds whatever the size (CelebA's
202,599 images included); ``meta.json`` is written last, so a cache without it is
incomplete and never trusted.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amsgrad_repro.io import write_json

ARRAYS = ("train_x", "train_y", "test_x", "test_y", "val_index")
META = "meta.json"


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


def cache_dir(path: str | Path) -> Path:
    """Accept the cache folder, its ``meta.json``, or ``data/cache/<name>.pt`` (the name
    the cross-team contract uses; the cache is a folder of memory-mappable ``.npy`` files)."""
    path = Path(path)
    if path.name == META:
        return path.parent
    if path.suffix == ".pt" and not path.is_file():
        return path.with_suffix("")
    return path


def load_cache(path: str | Path, device: str = "cpu") -> DatasetTensors:
    """Load a converted dataset as torch tensors on ``device``."""
    import torch

    folder = cache_dir(path)
    meta_path = folder / META
    if not meta_path.exists():
        raise FileNotFoundError(
            f"{folder}: no dataset cache (missing {META}); run the data stage first, "
            "e.g. snakemake --cores 1 " + str(meta_path)
        )
    meta = json.loads(meta_path.read_text())
    arrays = {}
    for name in ARRAYS:
        array = np.load(folder / f"{name}.npy", mmap_mode="r")
        with warnings.catch_warnings():  # read-only on purpose: the cache is shared
            warnings.filterwarnings("ignore", message=".*not writable.*")
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        arrays[name] = tensor.to(device) if device != "cpu" else tensor
    return DatasetTensors(**arrays, meta=meta)


class CacheWriter:
    """Writes a cache into a temporary sibling folder and renames it into place on commit,
    so an interrupted conversion leaves nothing a later run would trust."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = cache_dir(folder)
        self.tmp = self.folder.with_name(f".{self.folder.name}.partial")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def array(self, name: str, array: np.ndarray) -> None:
        np.save(self.tmp / f"{name}.npy", np.ascontiguousarray(array))

    def memmap(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A writable on-disk array, for conversions that stream (CelebA)."""
        return np.lib.format.open_memmap(self.tmp / f"{name}.npy", "w+", dtype, shape)

    def commit(self, meta: dict[str, Any]) -> None:
        write_json(self.tmp / META, meta)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        os.replace(self.tmp, self.folder)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def validation_split(num_train: int, size: int, seed: int) -> np.ndarray:
    """A fixed, seeded choice of ``size`` training indices held out for tuning."""
    if not 0 <= size < num_train:
        raise ValueError(f"validation size {size} must be below the {num_train} training items")
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(num_train)[:size]).astype(np.int64)
