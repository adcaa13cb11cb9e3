"""Readers for the published on-disk formats: IDX (MNIST, Fashion-MNIST), the CIFAR-10
python tarball, and CelebA's ``img_align_celeba.zip``.

Every reader raises :class:`CorruptData` with the file name when the bytes do not parse, so
a truncated download gives a clear error instead of a numpy traceback.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"


class CorruptData(ValueError):
    """A file does not parse as its format (truncated, wrong file, bad checksum)."""


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzip-compressed) as an array of its declared shape."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptData(f"{path.name}: cannot decompress ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise CorruptData(f"{path.name}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise CorruptData(f"{path.name}: {len(raw)} bytes, header promises {expected}")
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def read_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The CIFAR-10 python tarball → (train_x [N,3,32,32], train_y, test_x, test_y)."""
    path = Path(path)
    try:
        with tarfile.open(path, "r:gz") as tar:
            train = [_cifar_batch(tar, name) for name in CIFAR_TRAIN_BATCHES]
            test = _cifar_batch(tar, CIFAR_TEST_BATCH)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise CorruptData(f"{path.name}: cannot read the tarball ({error})") from error
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    return train_x, train_y, test[0], test[1]


def _cifar_batch(tar: tarfile.TarFile, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        member = tar.extractfile(f"{CIFAR_DIR}/{name}")
    except KeyError:
        raise CorruptData(f"CIFAR-10 tarball lacks {CIFAR_DIR}/{name}") from None
    batch = pickle.load(member, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise CorruptData(f"CIFAR-10 batch {name}: unexpected shape {data.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def celeba_members(path: str | Path) -> list[str]:
    """The JPEG names inside img_align_celeba.zip, in the official (numeric) order."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".jpg")]
    except (zipfile.BadZipFile, OSError) as error:
        raise CorruptData(f"{Path(path).name}: not a readable zip ({error})") from error
    if not names:
        raise CorruptData(f"{Path(path).name}: no JPEG images inside")
    return sorted(names)


def check_zip_crcs(path: str | Path) -> None:
    """Read every member and compare its CRC-32: the content check for a zip whose bytes
    are not the published ones (a mirror's re-packed copy), and it catches truncation."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
        raise CorruptData(f"{Path(path).name}: cannot read the zip ({error})") from error
    if bad is not None:
        raise CorruptData(f"{Path(path).name}: member {bad} fails its CRC check")


def iter_celeba(path: str | Path, size: int, crop: int) -> Iterator[np.ndarray]:
    """Decode CelebA images one at a time: centre crop ``crop``×``crop``, resize to
    ``size``×``size``, yield [3, size, size] uint8. Streaming keeps memory flat."""
    from PIL import Image

    with zipfile.ZipFile(path) as archive:
        for name in celeba_members(path):
            try:
                with Image.open(io.BytesIO(archive.read(name))) as image:
                    rgb = image.convert("RGB")
            except (OSError, zipfile.BadZipFile, zlib.error) as error:
                raise CorruptData(f"CelebA image {name}: cannot decode ({error})") from error
            width, height = rgb.size
            side = min(crop, width, height)
            left, top = (width - side) // 2, (height - side) // 2
            square = rgb.crop((left, top, left + side, top + side))
            resized = square.resize((size, size), Image.Resampling.BILINEAR)
            yield np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)
