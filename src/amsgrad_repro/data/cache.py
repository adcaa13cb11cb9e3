"""The converted dataset cache: one ``data/cache/<name>.pt`` file per dataset.

The file is a ``torch.save`` dict of uint8/int64 tensors plus ``meta``. Loading it with
``torch.load(mmap=True)`` maps the tensors instead of reading them, so a training job opens
even CelebA's 202,599 images in milliseconds. The file is written under a temporary name and
renamed into place, so a cache that exists is complete; an interrupted conversion leaves
nothing a later run would trust.

What a job trains on is verified: the writer records ``content_sha256``, a SHA-256 of the
tensors themselves (not of the raw files, which ``sha256`` in ``meta`` names), and
:func:`load_cache` recomputes it and refuses a mismatch, so a byte flipped inside the images
after the conversion is never trained on. Hashing costs about 0.05 s for Fashion-MNIST's
55 MB here (SHA-256 runs at 1.2 GB/s on this CPU), so caches up to
:data:`VERIFY_EVERY_LOAD_BYTES` are hashed at every load. CelebA's 2.5 GB cache would cost
about 2 s of hashing per job plus reading the whole file, more than a short (subset) job
needs: a larger cache is hashed in full once after every change of the file and a stamp
beside it records the verified hash with the file's size, inode, mtime and ctime; later
loads trust the stamp while all four are unchanged. ctime cannot be set back by a user, so
an edit hidden with ``touch -r`` still forces a full check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amsgrad_repro import commands
from amsgrad_repro.errors import ReportedError
from amsgrad_repro.io import atomic_open

ARRAYS = ("train_x", "train_y", "test_x", "test_y", "val_index")
# A text dataset (meta kind "text"): the vocabulary (its bytes, sorted), each split's token
# stream (uint8 indices into the vocabulary, its documents one after another) and where each
# of its documents starts in that stream.
TEXT_SPLITS = ("train", "val", "test")
TEXT_ARRAYS = (
    "vocab",
    *(f"{split}_tokens" for split in TEXT_SPLITS),
    *(f"{split}_starts" for split in TEXT_SPLITS),
)
TEXT_KIND = "text"
SUFFIX = ".pt"
# 2: meta carries content_sha256, the hash of the tensors that load_cache verifies.
FORMAT_VERSION = 2
VERIFY_EVERY_LOAD_BYTES = 512 << 20
FULL_CHECK = "full"
STAMP_CHECK = "stamp"


class CacheError(ReportedError):
    """A cache is missing, unreadable or damaged; the message says how to rebuild it."""


def rebuild_hint(file: Path) -> str:
    """How to rebuild one cache and nothing else (:func:`amsgrad_repro.commands.rebuild_cache`:
    the environment's Snakemake, ``--cores 1``, the configuration of the Snakemake that
    started this job, ``--force`` with the cache as the target)."""
    return f"rebuild it with: {commands.rebuild_cache(file)}"


# What a failed torch.load says about where the file is damaged, without torch's advice
# (weights_only=False, re-saving with other options, filing an issue), which is never the
# fix for a damaged cache.
ZIP_DAMAGE = ("PytorchStreamReader", "zip archive", "central directory", "mmap can only")


def damage(error: BaseException) -> str:
    """Why ``torch.load`` could not read a cache, in a few words and the exception's type."""
    kind = type(error).__name__
    if isinstance(error, OSError):
        return f"it cannot be read: {error.strerror or kind}"
    if any(marker in str(error) for marker in ZIP_DAMAGE):
        return f"its zip structure is damaged, e.g. the file was truncated ({kind})"
    return f"its pickled index of the tensors is damaged ({kind})"


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
    # How load_cache verified content_sha256: "full" (hashed now) or "stamp" (trusted).
    check: str = FULL_CHECK

    def to(self, device: Any) -> DatasetTensors:
        fields = {name: getattr(self, name).to(device) for name in ARRAYS}
        return DatasetTensors(**fields, meta=self.meta, check=self.check)

    @property
    def content_sha256(self) -> str:
        return self.meta["content_sha256"]


@dataclass
class TokenStreams:
    """A text dataset as tensors: ``vocab`` uint8 [V] (the byte of each token id), and per
    split (train, val, test) its token stream uint8 [N] and its documents' start offsets
    int64 (whole documents per split: no passage of a test document is trained on)."""

    vocab: Any
    train_tokens: Any
    val_tokens: Any
    test_tokens: Any
    train_starts: Any
    val_starts: Any
    test_starts: Any
    meta: dict[str, Any]
    check: str = FULL_CHECK

    def to(self, device: Any) -> TokenStreams:
        fields = {name: getattr(self, name).to(device) for name in TEXT_ARRAYS}
        return TokenStreams(**fields, meta=self.meta, check=self.check)

    @property
    def content_sha256(self) -> str:
        return self.meta["content_sha256"]

    @property
    def vocab_size(self) -> int:
        return int(self.vocab.shape[0])

    def tokens(self, split: str) -> Any:
        return getattr(self, f"{split}_tokens")

    def decode(self, ids: Any) -> str:
        """Token ids back to text (the vocabulary's bytes, read as UTF-8)."""
        table = bytes(self.vocab.cpu().tolist())
        return bytes(table[int(i)] for i in ids).decode("utf-8", "replace")


def array_names(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The arrays a cache of this kind holds, in hashing order."""
    return TEXT_ARRAYS if meta.get("kind") == TEXT_KIND else ARRAYS


def content_sha256(arrays: Mapping[str, Any], names: tuple[str, ...] = ARRAYS) -> str:
    """SHA-256 over every array of a cache (name, dtype, shape, then the raw bytes), in the
    fixed order of ``names`` (:data:`ARRAYS`, or :data:`TEXT_ARRAYS` for text);
    numpy arrays and CPU tensors alike, without copies."""
    digest = hashlib.sha256()
    for name in names:
        array = arrays[name]
        array = np.ascontiguousarray(array.numpy() if hasattr(array, "numpy") else array)
        digest.update(f"{name}:{array.dtype.str}:{list(array.shape)}\n".encode())
        digest.update(memoryview(array.reshape(-1).view(np.uint8)))
    return digest.hexdigest()


def cache_file(path: str | Path) -> Path:
    """The cache file for ``path``: ``data/cache/<name>.pt`` itself, or the dataset's name
    without the suffix (``data/cache/<name>``, also written ``data/cache/<name>/meta.json``),
    so callers may name a cache either way."""
    path = Path(path)
    if path.name == "meta.json":
        path = path.parent
    return path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)


def load_cache(
    path: str | Path,
    device: str = "cpu",
    verify_every_load_bytes: int = VERIFY_EVERY_LOAD_BYTES,
) -> Any:
    """Load a converted dataset as torch tensors on ``device`` (memory-mapped on the CPU),
    after checking that its tensors still hash to the recorded ``content_sha256``: a
    :class:`DatasetTensors` for images, a :class:`TokenStreams` for a text dataset."""
    file = cache_file(path)
    if not file.is_file():
        raise CacheError(f"{file}: no dataset cache; build it with: {commands.build_cache(file)}")
    payload = _read_payload(file)
    meta = payload["meta"]
    names = array_names(meta)
    tensors = {name: payload[name] for name in names}
    check = _verify(file, tensors, meta["content_sha256"], verify_every_load_bytes, names)
    if device != "cpu":
        tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
    kind = TokenStreams if meta.get("kind") == TEXT_KIND else DatasetTensors
    return kind(**tensors, meta=meta, check=check)


def _read_payload(file: Path) -> dict[str, Any]:
    """The saved dict, or CacheError with the rebuild command for anything unreadable (the
    reason in the cache's terms, :func:`damage`; torch's warnings about the odd pickle a
    damaged header shows are silenced too)."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:  # every kind of damage: zip, pickle, truncation, I/O
        raise CacheError(
            f"{file}: unreadable cache: {damage(error)}; {rebuild_hint(file)}"
        ) from None
    if not isinstance(payload, dict):
        raise CacheError(f"{file}: not a dataset cache; {rebuild_hint(file)}")
    meta = payload.get("meta")
    names = array_names(meta) if isinstance(meta, dict) else ARRAYS
    missing = [name for name in (*names, "meta") if name not in payload]
    version = payload.get("format_version")
    if missing or version != FORMAT_VERSION or "content_sha256" not in payload["meta"]:
        raise CacheError(
            f"{file}: a version-{version} cache, this code reads version {FORMAT_VERSION}"
            + (f" (lacks {', '.join(missing)})" if missing else "")
            + f"; {rebuild_hint(file)}"
        )
    return payload


def _verify(
    file: Path,
    tensors: Mapping[str, Any],
    recorded: str,
    every_load: int,
    names: tuple[str, ...] = ARRAYS,
) -> str:
    """Check the tensors against the recorded hash (see the module docstring for when a
    stamp stands in for hashing); returns how: ``full`` or ``stamp``."""
    info = file.stat()
    if info.st_size > every_load and _stamp_matches(file, info, recorded):
        return STAMP_CHECK
    actual = content_sha256(tensors, names)
    if actual != recorded:
        raise CacheError(
            f"{file}: the cached tensors do not match the hash recorded when the cache was "
            f"built (content_sha256 {actual[:12]}… != {recorded[:12]}…): the file was changed "
            f"or damaged after the conversion and is not trained on; {rebuild_hint(file)}"
        )
    if info.st_size > every_load:
        _write_stamp(file, info, recorded)
    return FULL_CHECK


def stamp_file(file: Path) -> Path:
    return file.with_name(f".{file.name}.verified")


def _file_state(info: os.stat_result) -> dict[str, int]:
    return {
        "size": info.st_size,
        "inode": info.st_ino,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
    }


def _stamp_matches(file: Path, info: os.stat_result, recorded: str) -> bool:
    try:
        stamp = json.loads(stamp_file(file).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("content_sha256") == recorded and stamp.get("file") == _file_state(info)


def _write_stamp(file: Path, info: os.stat_result, recorded: str) -> None:
    """Best effort: a read-only cache folder only means the next load hashes again."""
    stamp = {"content_sha256": recorded, "file": _file_state(info), "verified_at": time.time()}
    try:
        with atomic_open(stamp_file(file)) as handle:
            json.dump(stamp, handle)
    except OSError:
        pass


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

        names = array_names(meta)
        missing = [name for name in names if name not in self.arrays]
        if missing:
            raise ValueError(f"cache {self.path.name}: arrays {missing} were never written")
        payload: dict[str, Any] = {
            name: torch.from_numpy(np.asarray(array)) for name, array in self.arrays.items()
        }
        meta = {**meta, "content_sha256": content_sha256(self.arrays, names)}
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
