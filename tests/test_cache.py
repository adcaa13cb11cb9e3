"""The dataset cache is verified when a job loads it: a changed byte in the images (even
with the old modification time put back) or in the header is refused with the command that
rebuilds it, never trained on, and a run records the hash of what it trained on."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from amsgrad_repro.data import load_cache
from amsgrad_repro.data.cache import FULL_CHECK, STAMP_CHECK, CacheError, stamp_file
from amsgrad_repro.data.prepare import prepare
from tests.miniatures import write_idx_dataset

REBUILD = "snakemake --cores 1 --force "


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    path = root / "data/cache/mnist.pt"
    prepare(root, "mnist", write_idx_dataset(tmp_path / "src", num_train=200), path)
    return path


def largest_member_offset(path: Path) -> tuple[int, int]:
    """Where the data of the zip's largest member (the training images) starts, and its
    size: torch.save writes an uncompressed zip, one member per tensor."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.file_size


def flip_byte_keeping_mtime(path: Path, offset: int) -> None:
    """What the issue did: change one byte, then `touch -r` the old times back."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_cache_records_the_hash_of_its_tensors(cache: Path) -> None:
    data = load_cache(cache)
    assert len(data.content_sha256) == 64 and data.check == FULL_CHECK
    assert data.content_sha256 != data.meta["sha256"]  # not the raw files' hash


def test_flipped_image_byte_is_refused_with_the_rebuild_command(cache: Path) -> None:
    start, size = largest_member_offset(cache)
    flip_byte_keeping_mtime(cache, start + size // 2)
    with pytest.raises(CacheError) as error:
        load_cache(cache)
    message = str(error.value)
    assert "do not match the hash recorded" in message and REBUILD + str(cache) in message


def test_large_cache_is_hashed_once_per_change_of_the_file(cache: Path) -> None:
    """Above the size limit a stamp stands in for hashing while the file's stat (with its
    ctime, which `touch -r` cannot restore) is unchanged."""
    first = load_cache(cache, verify_every_load_bytes=0)
    assert first.check == FULL_CHECK and stamp_file(cache).exists()
    assert load_cache(cache, verify_every_load_bytes=0).check == STAMP_CHECK
    start, size = largest_member_offset(cache)
    time.sleep(0.01)  # a ctime tick on coarse-grained file systems
    flip_byte_keeping_mtime(cache, start + 1)
    with pytest.raises(CacheError, match="do not match the hash recorded"):
        load_cache(cache, verify_every_load_bytes=0)


def test_damaged_header_gives_the_rebuild_message_not_a_torch_traceback(
    cache: Path, tmp_path: Path
) -> None:
    flip_byte_keeping_mtime(cache, 300)
    with pytest.raises(CacheError) as error:
        load_cache(cache)
    message = str(error.value)
    assert "unreadable cache" in message and REBUILD + str(cache) in message
    assert "weights_only" not in message
    settings = {
        "kind": "classifier",
        "dataset": "mnist",
        "model": {"arch": "logreg"},
        "optimizers": ["adam"],
        "hparams": {"lr": 0.01},
        "batch_size": 32,
        "epochs": 1,
    }
    result = subprocess.run(
        [sys.executable, "-m", "amsgrad_repro.cli", "train", "--task", "t", "--optimizer"]
        + ["adam", "--seed", "0", "--settings", json.dumps(settings), "--dataset-cache"]
        + [str(cache), "--out", str(tmp_path / "run"), "--checkpoint-dir"]
        + [str(tmp_path / "ckpt"), "--device", "cpu", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and REBUILD in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_truncated_and_old_format_caches_say_how_to_rebuild(cache: Path, tmp_path: Path) -> None:
    import torch

    with pytest.raises(CacheError, match="snakemake --cores 1 .*nothing.pt"):
        load_cache(tmp_path / "nothing.pt")
    old = tmp_path / "old.pt"
    payload = torch.load(cache, weights_only=True)
    payload["format_version"] = 1
    del payload["meta"]["content_sha256"]
    torch.save(payload, old)
    with pytest.raises(CacheError, match="a version-1 cache, this code reads version 2"):
        load_cache(old)
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    with pytest.raises(CacheError, match=f"unreadable cache.*{REBUILD}"):
        load_cache(cache)


# torch's advice in its load errors and warnings: never the fix for a damaged cache.
TORCH_ADVICE = ("weights_only", "WeightsUnpickler", "torch.save", "file an issue", "trusted")


def test_any_damage_says_where_without_torch_advice(cache: Path, recwarn) -> None:
    """Every single flipped byte of the header and the zip directory that torch refuses
    gives one of the cache's own reasons and the rebuild command, and no warning."""
    intact = cache.read_bytes()
    offsets = [*range(0, 1500, 3), *range(len(intact) - 400, len(intact), 7)]
    reasons = set()
    for offset in offsets:
        damaged = bytearray(intact)
        damaged[offset] ^= 0xFF
        cache.write_bytes(bytes(damaged))
        try:
            load_cache(cache)
        except CacheError as error:
            message = str(error)
            assert REBUILD + str(cache) in message, message
            assert not any(advice in message for advice in TORCH_ADVICE), message
            reasons.add(message.split(": ", 1)[1].split(";", 1)[0])
    assert {r.split(" (")[0] for r in reasons} >= {
        "unreadable cache: its pickled index of the tensors is damaged",
        "unreadable cache: its zip structure is damaged, e.g. the file was truncated",
    }, reasons
    assert not [w for w in recwarn if "pickle" in str(w.message)], [str(w.message) for w in recwarn]
