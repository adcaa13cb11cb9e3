"""The data stage: raw files through DVC, verified, converted once into the cache.

Per dataset: a generated one (``data.generated``) is drawn in code and written straight
into the cache. For the others: if ``data/raw/<name>.dvc`` exists and a DVC remote holds
it, ``dvc pull``; otherwise fetch from the configured sources and ``dvc add`` the folder,
so that the ``.dvc`` file can be committed and ``dvc push`` shares the exact bytes. Then the
decoded content is checked (shapes, counts, label ranges) and converted into
``data/cache/<name>.pt``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amsgrad_repro.data import dvc
from amsgrad_repro.data.cache import TEXT_KIND, TEXT_SPLITS, CacheWriter, validation_split
from amsgrad_repro.data.formats import (
    CorruptData,
    archive_texts,
    celeba_members,
    check_zip_crcs,
    iter_celeba,
    read_cifar10,
    read_idx,
)
from amsgrad_repro.data.generated import GENERATED, generate
from amsgrad_repro.data.generated import provenance as generated_provenance
from amsgrad_repro.data.sources import CHUNK, Source, fetch_files

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class Splits:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_idx(folder: Path) -> Splits:
    arrays = [read_idx(folder / name) for name in IDX_FILES]
    train_x, train_y, test_x, test_y = arrays
    return Splits(
        train_x[:, None], train_y.astype(np.int64), test_x[:, None], test_y.astype(np.int64)
    )


def load_cifar(folder: Path, filename: str) -> Splits:
    return Splits(*read_cifar10(folder / filename))


def check_splits(name: str, splits: Splits, expected: dict[str, Any]) -> None:
    """Decoded-content verification; accepts re-compressed mirrors whose bytes differ."""
    shape = tuple(expected["image_shape"])
    problems = []
    for split, x, y in (
        ("train", splits.train_x, splits.train_y),
        ("test", splits.test_x, splits.test_y),
    ):
        if tuple(x.shape[1:]) != shape:
            problems.append(f"{split} images have shape {x.shape[1:]}, expected {shape}")
        if len(x) != len(y):
            problems.append(f"{split}: {len(x)} images but {len(y)} labels")
        count = expected.get(f"num_{split}")
        if count is not None and len(x) != count:
            problems.append(f"{split}: {len(x)} items, expected {count}")
        classes = expected.get("num_classes")
        if classes and len(y) and (y.min() < 0 or y.max() >= classes):
            problems.append(f"{split} labels outside 0..{classes - 1}")
    if problems:
        raise CorruptData(f"{name}: content check failed: " + "; ".join(problems))


def checker(spec: dict[str, Any], name: str) -> Callable[[Path], None]:
    """The content check run on a fetched folder before it is accepted."""
    fmt = spec["format"]

    def check(folder: Path) -> None:
        if fmt == "idx":
            check_splits(name, load_idx(folder), spec["expected"])
        elif fmt == "cifar10":
            check_splits(name, load_cifar(folder, spec["files"][0]["name"]), spec["expected"])
        elif fmt == TEXT_KIND:
            check_texts(name, load_texts(folder, spec), spec["expected"])
        elif fmt == "celeba":
            archive = folder / spec["files"][0]["name"]
            count = len(celeba_members(archive))
            wanted = spec["expected"].get("num_images")
            if wanted is not None and count != wanted:
                raise CorruptData(f"{name}: {count} images, expected {wanted}")
            check_zip_crcs(archive)
        else:
            raise ValueError(f"{name}: unknown format {fmt!r}")

    return check


def load_texts(folder: Path, spec: dict[str, Any]) -> dict[str, bytes]:
    """A text dataset's documents (archive member path → bytes) from its one archive."""
    return archive_texts(folder / spec["files"][0]["name"], spec["members"])


def distinct_bytes(texts: dict[str, bytes]) -> np.ndarray:
    """The sorted distinct byte values of all documents (the vocabulary), as uint8."""
    counts = np.zeros(256, dtype=np.int64)
    for text in texts.values():
        counts += np.bincount(np.frombuffer(text, dtype=np.uint8), minlength=256)
    return np.flatnonzero(counts).astype(np.uint8)


def check_texts(name: str, texts: dict[str, bytes], expected: dict[str, Any]) -> None:
    """The documents' count, total bytes and distinct bytes against the configuration."""
    found = {
        "num_documents": len(texts),
        "num_bytes": sum(len(text) for text in texts.values()),
        "vocab_size": len(distinct_bytes(texts)),
    }
    problems = [
        f"{key} {found[key]}, expected {want}"
        for key, want in expected.items()
        if key in found and found[key] != want
    ]
    if problems:
        raise CorruptData(f"{name}: content check failed: " + "; ".join(problems))


def split_documents(names: list[str], split: dict[str, int]) -> dict[str, list[str]]:
    """Whole documents per split: a permutation of the sorted names by ``split.seed``
    gives the first ``split.val`` to validation, the next ``split.test`` to test, the rest
    to training (each list sorted), so no document is in two splits."""
    held = split["val"] + split["test"]
    if not 0 <= held < len(names):
        raise ValueError(f"split: {held} held-out documents leave none of {len(names)} to train")
    ordered = sorted(names)
    order = np.random.default_rng(split["seed"]).permutation(len(ordered))
    picked = [ordered[i] for i in order]
    val, test = picked[: split["val"]], picked[split["val"] : held]
    return {"train": sorted(picked[held:]), "val": sorted(val), "test": sorted(test)}


def raw_folder(root: Path, name: str) -> Path:
    return root / "data" / "raw" / name


def obtain_raw(root: Path, name: str, spec: dict[str, Any], log: Callable[[str], None]) -> Path:
    """Raw files in data/raw/<name>: the tracked copy or the DVC remote when they pass the
    checks, else the configured sources (then ``dvc add``, so the bytes can be pushed)."""
    folder = raw_folder(root, name)
    use_dvc = dvc.is_dvc_repo(root)
    if use_dvc and _tracked_copy(root, name, spec, log):
        return folder
    files = {f["name"]: {"md5": f.get("md5"), "sha256": f.get("sha256")} for f in spec["files"]}
    sources = [Source.parse(entry) for entry in spec["sources"]]
    source = fetch_files(name, files, sources, folder, checker(spec, name))
    checked = "published checksums" if source.verify == "md5" else "content"
    log(f"{name}: fetched from {source.label} (verified by {checked})")
    if use_dvc:
        tracked = dvc.track(root, folder)
        log(f"{name}: tracked with DVC in {tracked.relative_to(root)}; commit it and `dvc push`")
    return folder


def _tracked_copy(root: Path, name: str, spec: dict[str, Any], log: Callable[[str], None]) -> bool:
    """True when data/raw/<name> matches data/raw/<name>.dvc, as it is or after ``dvc pull``,
    and passes the content check (no network needed for a rerun)."""
    folder = raw_folder(root, name)
    dvc_file = folder.with_name(f"{name}.dvc")
    if not dvc_file.exists():
        return False
    where = dvc_file.relative_to(root)
    if folder.is_dir() and dvc.is_unchanged(root, dvc_file):
        origin = f"reusing the tracked copy in {folder.relative_to(root)}"
    elif dvc.checkout(root, dvc_file) and dvc.is_unchanged(root, dvc_file):
        origin = f"restored from the local DVC cache ({where}; no remote needed)"
    elif dvc.pull(root, dvc_file):
        origin = f"pulled from the DVC remote ({where})"
    else:
        log(f"{name}: {where} exists but no DVC remote provided it; trying the sources")
        return False
    try:
        checker(spec, name)(folder)
    except (CorruptData, OSError) as error:
        log(f"{name}: {origin} failed its check ({error}); trying the sources")
        return False
    log(f"{name}: {origin}")
    return True


def raw_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def file_digests(path: Path) -> dict[str, str]:
    """md5 and sha256 of one file, in one read."""
    digests = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            for digest in digests.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def raw_provenance(folder: Path) -> dict[str, Any]:
    """Per-file digests plus one digest over all raw files (name + file digest each) per
    algorithm, recorded with every run so a result names the exact bytes it was trained on."""
    files = {path.name: file_digests(path) for path in raw_files(folder)}
    combined = {}
    for algorithm in ("md5", "sha256"):
        digest = hashlib.new(algorithm)
        for name, digests in files.items():
            digest.update(f"{name}:{digests[algorithm]}\n".encode())
        combined[algorithm] = digest.hexdigest()
    return {**combined, "files": files}


def convert(name: str, spec: dict[str, Any], raw: Path | None, out: Path) -> dict[str, Any]:
    """Decode the raw files (none for a generated dataset) into the cache file ``out``
    (``data/cache/<name>.pt``)."""
    if spec["format"] == GENERATED:
        return _convert_generated(name, spec, out)
    if spec["format"] == TEXT_KIND:
        return _convert_text(name, spec, raw, out)
    writer = CacheWriter(out)
    try:
        if spec["format"] == "celeba":
            counts = _convert_celeba(writer, spec, raw / spec["files"][0]["name"])
        else:
            counts = _convert_labelled(writer, spec, raw)
        meta = {
            "name": name,
            "format": spec["format"],
            **raw_provenance(raw),
            "validation": spec.get("validation"),
            "num_classes": spec["expected"].get("num_classes", 0),
            "image_shape": list(spec["expected"]["image_shape"]),
            "classes": spec.get("classes"),
            **counts,
        }
        writer.commit(meta)
    except BaseException:
        writer.abort()
        raise
    return meta


def _convert_text(name: str, spec: dict[str, Any], raw: Path, out: Path) -> dict[str, Any]:
    """A text dataset: the vocabulary (sorted distinct bytes of all documents), and per
    split its documents' token ids one after another as uint8, with their start offsets."""
    texts = load_texts(raw, spec)
    vocab = distinct_bytes(texts)
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[vocab] = np.arange(len(vocab), dtype=np.uint8)
    splits = split_documents(list(texts), spec["split"])
    writer = CacheWriter(out)
    try:
        writer.array("vocab", vocab)
        sizes: dict[str, Any] = {}
        for split in TEXT_SPLITS:
            docs = [np.frombuffer(texts[doc], dtype=np.uint8) for doc in splits[split]]
            lengths = np.array([len(doc) for doc in docs], dtype=np.int64)
            stream = np.concatenate(docs) if docs else np.zeros(0, dtype=np.uint8)
            writer.array(f"{split}_tokens", lookup[stream])
            writer.array(f"{split}_starts", np.cumsum(np.r_[0, lengths])[:-1].astype(np.int64))
            sizes[split] = {"documents": splits[split], "tokens": int(lengths.sum())}
        meta = {
            "name": name,
            "format": spec["format"],
            "kind": TEXT_KIND,
            **raw_provenance(raw),
            "members": spec["members"],
            "split": spec["split"],
            "vocab_size": len(vocab),
            "splits": sizes,
            **{f"num_{split}": sizes[split]["tokens"] for split in TEXT_SPLITS},
        }
        writer.commit(meta)
    except BaseException:
        writer.abort()
        raise
    return meta


def _convert_generated(name: str, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """A dataset drawn in code (``data.generated``): its points as ``train_x``/``test_x``
    (float32), zero labels (the kind ignores them), and the seeded validation split of
    the training points when one is declared."""
    splits = generate(name, spec)
    validation = spec.get("validation") or {"size": 0, "seed": 0}
    val = validation_split(len(splits.train_x), validation["size"], validation["seed"])
    writer = CacheWriter(out)
    try:
        for split in ("train", "test"):
            x = getattr(splits, f"{split}_x")
            writer.array(f"{split}_x", x)
            writer.array(f"{split}_y", np.zeros(len(x), dtype=np.int64))
        writer.array("val_index", val)
        meta = {
            "name": name,
            "format": spec["format"],
            **generated_provenance(spec),
            "validation": spec.get("validation"),
            "num_classes": 0,
            # The shape of one sample (the models' meta reads it as image_shape).
            "image_shape": list(splits.train_x.shape[1:]),
            "num_train": len(splits.train_x),
            "num_test": len(splits.test_x),
            "num_val": len(val),
        }
        writer.commit(meta)
    except BaseException:
        writer.abort()
        raise
    return meta


def _convert_labelled(writer: CacheWriter, spec: dict[str, Any], raw: Path) -> dict[str, int]:
    """IDX and CIFAR-10: the official split as is, plus a seeded validation split."""
    fmt, first = spec["format"], spec["files"][0]["name"]
    splits = load_idx(raw) if fmt == "idx" else load_cifar(raw, first)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        writer.array(field, getattr(splits, field))
    validation = spec["validation"]
    val = validation_split(len(splits.train_x), validation["size"], validation["seed"])
    writer.array("val_index", val)
    return {"num_train": len(splits.train_x), "num_test": len(splits.test_x), "num_val": len(val)}


def _convert_celeba(writer: CacheWriter, spec: dict[str, Any], archive: Path) -> dict[str, int]:
    """Stream JPEGs into on-disk arrays; the official partition is by image order."""
    total = len(celeba_members(archive))
    partition = spec["partition"]  # official counts: train, val, test
    scale = total / sum(partition)
    num_train = round(partition[0] * scale)
    num_val = round(partition[1] * scale)
    size = spec["expected"]["image_shape"][1]
    train_end = num_train + num_val
    train_x = writer.memmap("train_x", (train_end, 3, size, size), np.uint8)
    test_x = writer.memmap("test_x", (total - train_end, 3, size, size), np.uint8)
    for index, image in enumerate(iter_celeba(archive, size, spec.get("crop", 148))):
        if index < train_end:
            train_x[index] = image
        else:
            test_x[index - train_end] = image
    train_x.flush()
    test_x.flush()
    writer.array("train_y", np.zeros(train_end, dtype=np.int64))
    writer.array("test_y", np.zeros(total - train_end, dtype=np.int64))
    writer.array("val_index", np.arange(num_train, train_end, dtype=np.int64))
    return {"num_train": train_end, "num_test": total - train_end, "num_val": num_val}


def prepare(root: Path, name: str, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The whole stage for one dataset under its lock: a second preparer of the same
    dataset waits, then finds the first one's tracked raw copy instead of fetching again."""
    started = time.perf_counter()
    with dvc.dataset_lock(root, name):
        if spec["format"] == GENERATED:
            print(f"{name}: generated by {spec['generator']} (nothing to fetch)", flush=True)
            raw = None
        else:
            raw = obtain_raw(root, name, spec, lambda msg: print(msg, flush=True))
        fetched = time.perf_counter()
        meta = convert(name, spec, raw, out)
    print(
        f"{name}: raw files ready in {fetched - started:.1f} s, converted in "
        f"{time.perf_counter() - fetched:.1f} s → {out}",
        flush=True,
    )
    return meta
