"""Data stage: real parsers on miniatures of every format, real dvc, errors users meet."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from amsgrad_repro.data import dvc, load_cache
from amsgrad_repro.data.formats import CorruptData, read_idx
from amsgrad_repro.data.prepare import prepare
from amsgrad_repro.data.sources import DatasetUnavailable
from tests.miniatures import write_celeba, write_cifar10, write_idx_dataset

FASHION = Path("/usr/share/datasets/fashion-mnist")


def git_dvc_repo(root: Path, remote: Path | None = None) -> Path:
    """A scratch git repository with DVC initialised the way the project's is."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).parents[1] / ".gitignore", root / ".gitignore")  # the real one
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for key, value in (("user.email", "t@example.org"), ("user.name", "t")):
        subprocess.run(["git", "config", key, value], cwd=root, check=True)
    env = {**os.environ, **dvc.OFFLINE_ENV}
    subprocess.run([dvc.dvc_executable(), "init", "-q"], cwd=root, env=env, check=True)
    dvc.dvc(root, "config", "core.analytics", "false")
    if remote is not None:
        dvc.dvc(root, "remote", "add", "-d", "local", str(remote))
    return root


def test_idx_miniature_through_dvc_push_and_pull_into_fresh_clone(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    remote = tmp_path / "remote"
    root = git_dvc_repo(tmp_path / "repo", remote)
    meta = prepare(root, "mnist", spec, root / "data/cache/mnist")
    dvc_file = root / "data/raw/mnist.dvc"
    assert dvc_file.exists() and meta["num_train"] == 40 and len(meta["sha256"]) == 64
    data = load_cache(root / "data/cache/mnist/meta.json")
    assert data.train_x.dtype.is_floating_point is False and tuple(data.train_x.shape) == (
        40,
        1,
        28,
        28,
    )
    assert data.train_y.tolist() == [i % 10 for i in range(40)] and len(data.val_index) == 4
    raw = read_idx(tmp_path / "src/train-images-idx3-ubyte.gz")
    assert np.array_equal(data.train_x[:, 0].numpy(), raw)

    dvc.push(root)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "data"], cwd=root, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    assert (clone / "data/raw/mnist.dvc").exists(), ".gitignore must not hide .dvc files"
    shutil.rmtree(tmp_path / "src")  # the only way left is the DVC remote
    spec_gone = {**spec, "sources": [str(tmp_path / "src")]}
    meta2 = prepare(clone, "mnist", spec_gone, clone / "data/cache/mnist")
    assert meta2["sha256"] == meta["sha256"]


def test_cifar_tarball_and_celeba_zip_convert(tmp_path: Path) -> None:
    root = tmp_path / "plain"  # no DVC here: the stage still works on a plain checkout
    root.mkdir()
    cifar = prepare(root, "cifar10", write_cifar10(tmp_path / "c"), root / "data/cache/cifar10")
    data = load_cache(root / "data/cache/cifar10.pt")  # the contract's name works too
    assert cifar["num_train"] == 30 and tuple(data.test_x.shape) == (8, 3, 32, 32)
    assert data.train_y.dtype.itemsize == 8

    celeba = prepare(root, "celeba", write_celeba(tmp_path / "z"), root / "data/cache/celeba")
    faces = load_cache(root / "data/cache/celeba")
    assert tuple(faces.train_x.shape[1:]) == (3, 64, 64)
    assert celeba["num_train"] + celeba["num_test"] == 10
    assert faces.val_index.tolist() == [8] and int(faces.train_y.abs().sum()) == 0


def test_no_network_names_dataset_urls_and_local_fix(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    urls = ["http://127.0.0.1:9/mnist/", "http://127.0.0.1:9/mirror/"]
    spec["sources"] = urls
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(DatasetUnavailable) as error:
        prepare(root, "mnist", spec, root / "data/cache/mnist")
    message = str(error.value)
    assert "'mnist'" in message and all(url in message for url in urls)
    assert "datasets.mnist.sources" in message and "file://" in message
    assert not (root / "data/cache/mnist").exists() and not (root / "data/raw/mnist").exists()


def test_wrong_checksum_is_quarantined_and_next_source_wins(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "good")
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "good", bad)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01junk"))
    spec["sources"] = [str(bad), str(tmp_path / "good")]
    root = tmp_path / "repo"
    root.mkdir()
    prepare(root, "mnist", spec, root / "data/cache/mnist")
    kept = list((root / "data/raw/quarantine").glob("t10k-labels*.corrupt*"))
    assert len(kept) == 2, kept  # the file and its .why note
    assert not list((root / "data/raw/mnist").glob("*.corrupt*"))


def test_truncated_download_leaves_nothing_trusted(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    image = tmp_path / "src/train-images-idx3-ubyte.gz"
    image.write_bytes(image.read_bytes()[:-200])
    spec["sources"] = [{"url": str(tmp_path / "src"), "verify": "content"}]
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(DatasetUnavailable, match="train-images-idx3-ubyte.gz"):
        prepare(root, "mnist", spec, root / "data/cache/mnist")
    files = (root / "data").rglob("*")
    leftovers = [p.name for p in files if p.is_file() and p.suffix != ".lock"]
    assert leftovers == [], leftovers
    with pytest.raises(CorruptData, match="cannot decompress|bytes"):
        read_idx(image)


def test_dvc_calls_wait_for_the_repository_lock(tmp_path: Path) -> None:
    root = git_dvc_repo(tmp_path / "repo")
    done: list[float] = []
    with dvc.repo_lock(root):
        thread = threading.Thread(target=lambda: (dvc.dvc(root, "status"), done.append(1)))
        thread.start()
        time.sleep(1.0)
        assert not done, "dvc ran while another job held the lock"
    thread.join(60)
    assert done


def test_real_fashion_mnist_from_debian(tmp_path: Path) -> None:
    if not FASHION.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{FASHION} missing: .ci/run must apt-get install dataset-fashion-mnist")
        pytest.skip("apt-get install dataset-fashion-mnist to run this test")
    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    spec = config["datasets"]["fashion_mnist"]
    spec = {**spec, "sources": [{"url": str(FASHION), "verify": "content"}]}
    root = tmp_path / "repo"
    root.mkdir()
    started = time.perf_counter()
    meta = prepare(root, "fashion_mnist", spec, root / "data/cache/fashion_mnist")
    converted = time.perf_counter() - started
    started = time.perf_counter()
    data = load_cache(root / "data/cache/fashion_mnist/meta.json")
    loaded = time.perf_counter() - started
    print(f"fashion_mnist: fetch+verify+convert {converted:.2f} s, load {loaded * 1e3:.1f} ms")
    assert tuple(data.train_x.shape) == (60000, 1, 28, 28) and len(data.test_y) == 10000
    assert sorted(set(data.train_y.tolist())) == list(range(10)) and len(data.val_index) == 5000
    assert meta["classes"][9] == "Ankle boot" and loaded < 1.0


def test_cli_reports_unavailable_dataset_with_exit_1(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    spec["sources"] = [str(tmp_path / "nowhere")]
    import json

    result = subprocess.run(
        [sys.executable, "-m", "amsgrad_repro.cli", "prepare-data", "--dataset", "mnist"]
        + ["--settings", json.dumps(spec), "--out", str(tmp_path / "cache")]
        + ["--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "nowhere" in result.stderr, result.stderr


def test_two_concurrent_preparers_fetch_once_then_reuse(tmp_path: Path) -> None:
    import json

    spec = write_idx_dataset(tmp_path / "src")
    root = git_dvc_repo(tmp_path / "repo")  # no remote: only the local tracked copy helps
    command = [sys.executable, "-m", "amsgrad_repro.cli", "prepare-data", "--dataset", "mnist"]
    command += ["--settings", json.dumps(spec), "--root", str(root), "--out"]
    jobs = [
        subprocess.Popen(
            [*command, str(root / f"data/cache/mnist{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [job.communicate(timeout=120)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], logs
    assert sum("fetched from" in log for log in logs) == 1, logs
    assert sum("reusing the tracked copy" in log for log in logs) == 1, logs
    shutil.rmtree(tmp_path / "src")
    prepare(root, "mnist", spec, root / "data/cache/mnist")  # offline rerun: reuses


def test_miniature_entries_fit_the_config_schema(tmp_path: Path) -> None:
    """Other tests drop these entries into config.yaml; the schema must accept them."""
    from amsgrad_repro.config import load, validate_schema

    config = load(Path(__file__).parents[1] / "config.yaml")
    config["datasets"] = {
        "mnist": write_idx_dataset(tmp_path / "m"),
        "cifar10": write_cifar10(tmp_path / "c"),
        "celeba": write_celeba(tmp_path / "z", count=2),
    }
    validate_schema(config)
    config["datasets"]["mnist"]["sources"] = [{"url": "x", "verify": "sha1"}]
    with pytest.raises(Exception, match="verify|sha1"):
        validate_schema(config)


def test_http_mirrors_first_404_then_second_serves(tmp_path: Path) -> None:
    """The download path for real: a local HTTP server, a dead mirror, then a good one."""
    import functools
    import http.server

    spec = write_idx_dataset(tmp_path / "site/good")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        spec["sources"] = [f"{base}/missing/", f"{base}/good/"]
        root = tmp_path / "repo"
        root.mkdir()
        meta = prepare(root, "mnist", spec, root / "data/cache/mnist")
    finally:
        server.shutdown()
    assert meta["num_test"] == 12 and not (root / "data/raw/.mnist.fetching").exists()
