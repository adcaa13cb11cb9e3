"""Data stage: real parsers on miniatures of every format, real dvc, errors users meet."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from amsgrad_repro.data import dvc, load_cache
from amsgrad_repro.data.formats import CorruptData, read_idx
from amsgrad_repro.data.prepare import prepare
from amsgrad_repro.data.sources import DatasetUnavailable
from tests.miniatures import write_celeba, write_cifar10, write_idx_dataset
from tests.pipeline import prepare_data_command

FASHION = Path("/usr/share/datasets/fashion-mnist")


def git_dvc_repo(root: Path, remote: Path | None = None) -> Path:
    """A scratch git repository with DVC initialised the way the project's is: the
    project's real .gitignore and .dvc/config (default remote ../amsgrad-repro-dvc-remote
    beside the clone, unless ``remote`` replaces its URL)."""
    project = Path(__file__).parents[1]
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(project / ".gitignore", root / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for key, value in (("user.email", "t@example.org"), ("user.name", "t")):
        subprocess.run(["git", "config", key, value], cwd=root, check=True)
    env = {**os.environ, **dvc.OFFLINE_ENV}
    subprocess.run([dvc.dvc_executable(), "init", "-q"], cwd=root, env=env, check=True)
    shutil.copy(project / ".dvc/config", root / ".dvc/config")
    if remote is not None:
        dvc.dvc(root, "remote", "modify", "local", "url", str(remote))
    return root


def test_project_dvc_config_is_offline_with_a_remote_outside_the_repo(tmp_path: Path) -> None:
    root = git_dvc_repo(tmp_path / "repo")
    settings = dict(
        line.split("=", 1) for line in dvc.dvc(root, "config", "--list").stdout.splitlines()
    )
    assert settings["core.analytics"] == "false" and settings["core.check_update"] == "false"
    assert settings["core.remote"] == "local"
    remote = Path(settings["remote.local.url"])
    assert remote == tmp_path / "amsgrad-repro-dvc-remote", remote  # beside the clone


def test_idx_miniature_through_dvc_push_and_pull_into_fresh_clone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    root = git_dvc_repo(tmp_path / "repo")  # the project's own default remote
    meta = prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
    dvc_file = root / "data/raw/mnist.dvc"
    assert dvc_file.exists() and meta["num_train"] == 40 and len(meta["sha256"]) == 64
    sources = {f["name"]: f["md5"] for f in spec["files"]}
    assert {name: d["md5"] for name, d in meta["files"].items()} == sources
    data = load_cache(root / "data/cache/mnist.pt")
    assert data.train_x.dtype == torch.uint8 and tuple(data.train_x.shape) == (40, 1, 28, 28)
    assert data.train_y.dtype == torch.int64 and data.val_index.dtype == torch.int64
    assert data.train_y.tolist() == [i % 10 for i in range(40)] and len(data.val_index) == 4
    raw = read_idx(tmp_path / "src/train-images-idx3-ubyte.gz")
    assert np.array_equal(data.train_x[:, 0].numpy(), raw)
    assert data.meta["image_shape"] == [1, 28, 28] and data.meta["num_classes"] == 10

    dvc.push(root)
    assert any((tmp_path / "amsgrad-repro-dvc-remote").rglob("*")), "push wrote nothing"
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "data"], cwd=root, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    assert (clone / "data/raw/mnist.dvc").exists(), ".gitignore must not hide .dvc files"
    shutil.rmtree(tmp_path / "src")  # the only way left is the DVC remote
    capsys.readouterr()
    meta2 = prepare(clone, "mnist", spec, clone / "data/cache/mnist.pt")
    assert "pulled from the DVC remote" in capsys.readouterr().out
    assert meta2["sha256"] == meta["sha256"]
    assert torch.equal(load_cache(clone / "data/cache/mnist.pt").train_x, data.train_x)


def test_cifar_tarball_and_celeba_zip_convert(tmp_path: Path) -> None:
    root = tmp_path / "plain"  # no DVC here: the stage still works on a plain checkout
    root.mkdir()
    cifar = prepare(root, "cifar10", write_cifar10(tmp_path / "c"), root / "data/cache/cifar10.pt")
    data = load_cache(root / "data/cache/cifar10")  # the name without .pt works too
    assert cifar["num_train"] == 30 and tuple(data.test_x.shape) == (8, 3, 32, 32)
    assert data.train_y.dtype.itemsize == 8

    celeba = prepare(root, "celeba", write_celeba(tmp_path / "z"), root / "data/cache/celeba.pt")
    faces = load_cache(root / "data/cache/celeba.pt")
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
        prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
    message = str(error.value)
    assert "'mnist'" in message and all(url in message for url in urls)
    assert "datasets.mnist.sources" in message and "file://" in message
    assert "--config 'datasets={mnist: {sources: [/path/to/copy]}}'" in message
    assert not (root / "data/cache/mnist.pt").exists() and not (root / "data/raw/mnist").exists()


def test_wrong_checksum_is_quarantined_and_next_source_wins(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "good")
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "good", bad)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01junk"))
    spec["sources"] = [str(bad), str(tmp_path / "good")]
    root = tmp_path / "repo"
    root.mkdir()
    prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
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
        prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
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
    meta = prepare(root, "fashion_mnist", spec, root / "data/cache/fashion_mnist.pt")
    converted = time.perf_counter() - started
    started = time.perf_counter()
    data = load_cache(root / "data/cache/fashion_mnist.pt")
    loaded = time.perf_counter() - started
    print(f"fashion_mnist: fetch+verify+convert {converted:.2f} s, load {loaded * 1e3:.1f} ms")
    assert tuple(data.train_x.shape) == (60000, 1, 28, 28) and len(data.test_y) == 10000
    assert sorted(set(data.train_y.tolist())) == list(range(10)) and len(data.val_index) == 5000
    assert meta["classes"][9] == "Ankle boot" and loaded < 1.0


def test_cli_reports_unavailable_dataset_with_exit_1(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    spec["sources"] = [str(tmp_path / "nowhere")]
    result = subprocess.run(
        prepare_data_command(spec, tmp_path, tmp_path / "cache.pt"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "nowhere" in result.stderr, result.stderr


def test_concurrent_preparers_fetch_once_and_share_dvc(tmp_path: Path) -> None:
    """Two jobs for mnist and one for another dataset start at once in one DVC repo: mnist
    is fetched once (the second job waits, then reuses it), and no dvc call fails on
    DVC's own repository lock."""
    import json

    specs = {"mnist": write_idx_dataset(tmp_path / "src"), "other": write_cifar10(tmp_path / "c")}
    root = git_dvc_repo(tmp_path / "repo")  # its default remote is empty: no pull helps
    cli = [sys.executable, "-m", "amsgrad_repro.cli", "prepare-data", "--root", str(root)]
    jobs = [
        subprocess.Popen(
            [*cli, "--dataset", name, "--settings", json.dumps(specs[name])]
            + ["--out", str(root / f"data/cache/{name}{i}.pt")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, name in enumerate(("mnist", "mnist", "other"))
    ]
    logs = [job.communicate(timeout=180)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0], logs
    assert sum("mnist: fetched from" in log for log in logs) == 1, logs
    assert sum("mnist: reusing the tracked copy" in log for log in logs) == 1, logs
    assert (root / "data/raw/other.dvc").exists() and (root / "data/raw/mnist.dvc").exists()
    shutil.rmtree(tmp_path / "src")
    prepare(root, "mnist", specs["mnist"], root / "data/cache/mnist.pt")  # offline rerun


def test_tracked_but_never_pushed_falls_back_to_the_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh clone whose .dvc file was committed but whose data never reached a remote
    (CI on this repository): the sources still provide it."""
    spec = write_idx_dataset(tmp_path / "src")
    root = git_dvc_repo(tmp_path / "repo")
    prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "track"], cwd=root, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    capsys.readouterr()
    prepare(clone, "mnist", spec, clone / "data/cache/mnist.pt")
    out = capsys.readouterr().out
    assert "data/raw/mnist.dvc exists but no DVC remote provided it" in out, out
    assert "mnist: fetched from" in out
    assert dvc.is_unchanged(clone, clone / "data/raw/mnist.dvc"), "same bytes, same .dvc"


def test_edited_raw_copy_is_restored_from_dvc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    root = git_dvc_repo(tmp_path / "repo")
    first = prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
    dvc.push(root)
    shutil.rmtree(tmp_path / "src")
    labels = root / "data/raw/mnist/t10k-labels-idx1-ubyte.gz"
    labels.chmod(0o644)
    labels.write_bytes(gzip.compress(b"edited"))
    capsys.readouterr()
    again = prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
    # The bytes came from this clone's own DVC cache, and the log says so (it used to say
    # "pulled from the DVC remote"; a clone without the cache does pull: the test above).
    out = capsys.readouterr().out
    assert "restored from the local DVC cache" in out and "DVC remote" not in out, out
    assert again["sha256"] == first["sha256"]


def test_direct_source_for_a_many_file_dataset_is_refused(tmp_path: Path) -> None:
    spec = write_idx_dataset(tmp_path / "src")
    spec["sources"] = [{"url": str(tmp_path / "src/train-images-idx3-ubyte.gz"), "direct": True}]
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(DatasetUnavailable, match="direct: true` names one file, but 4"):
        prepare(root, "mnist", spec, root / "data/cache/mnist.pt")


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
    spec = write_idx_dataset(tmp_path / "site/good")
    with serve(tmp_path / "site") as base:
        spec["sources"] = [f"{base}/missing/", f"{base}/good/"]
        root = tmp_path / "repo"
        root.mkdir()
        meta = prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
    assert meta["num_test"] == 12 and not (root / "data/raw/.mnist.fetching").exists()


def serve(folder: Path, handler_class: type | None = None):
    """A real HTTP server on a free local port serving ``folder`` (context manager)."""
    import contextlib
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(handler_class or Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)

    @contextlib.contextmanager
    def running():
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()

    return running()


def test_http_connection_dropped_mid_file_is_an_error_not_a_file(tmp_path: Path) -> None:
    """The server promises the whole file and hangs up halfway (a dropped connection)."""
    import http.server

    spec = write_idx_dataset(tmp_path / "site/mnist")
    spec["sources"] = [{"url": "PLACEHOLDER", "verify": "content"}]

    class Dropping(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def copyfile(self, source, outputfile) -> None:  # send half, then close
            data = source.read()
            outputfile.write(data[: len(data) // 2])

    with serve(tmp_path / "site", Dropping) as base:
        spec["sources"][0]["url"] = f"{base}/mnist/"
        root = tmp_path / "repo"
        root.mkdir()
        with pytest.raises(DatasetUnavailable) as error:
            prepare(root, "mnist", spec, root / "data/cache/mnist.pt")
    message = str(error.value)
    assert f"{base}/mnist/: train-images-idx3-ubyte.gz: connection closed" in message, message
    leftovers = [p for p in (root / "data").rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert leftovers == [], leftovers


def test_missing_or_damaged_cache_says_how_to_rebuild(tmp_path: Path) -> None:
    from amsgrad_repro.data.cache import CacheError

    with pytest.raises(CacheError, match=r"snakemake --cores 1 .*nothing\.pt"):
        load_cache(tmp_path / "nothing.pt")
    root = tmp_path / "repo"
    root.mkdir()
    cache = root / "data/cache/mnist.pt"
    prepare(root, "mnist", write_idx_dataset(tmp_path / "src"), cache)
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    with pytest.raises(CacheError, match="unreadable cache"):
        load_cache(cache)


def test_celeba_mirror_with_a_bad_crc_is_rejected(tmp_path: Path) -> None:
    """A re-packed mirror (verify: content) has no md5 to match: every member's CRC is."""
    spec = write_celeba(tmp_path / "z", count=3)
    archive = tmp_path / "z/img_align_celeba.zip"
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as handle:
        member = handle.read("img_align_celeba/000002.jpg")
    at = raw.find(member) + len(member) // 2
    raw[at] ^= 0xFF
    archive.write_bytes(bytes(raw))
    spec["sources"] = [{"url": archive.as_uri(), "direct": True, "verify": "content"}]
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(DatasetUnavailable, match="000002.jpg fails its CRC"):
        prepare(root, "celeba", spec, root / "data/cache/celeba.pt")
    assert not (root / "data/raw/celeba").exists()


def test_failed_conversion_leaves_no_cache_and_no_scratch(tmp_path: Path) -> None:
    spec = write_celeba(tmp_path / "z", count=3)
    archive = tmp_path / "z/img_align_celeba.zip"
    with zipfile.ZipFile(archive, "a") as handle:  # valid zip entry, not a JPEG
        handle.writestr("img_align_celeba/000004.jpg", b"this is not a jpeg")
    spec["sources"] = [{"url": archive.as_uri(), "direct": True, "verify": "content"}]
    spec["expected"]["num_images"] = 4
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(CorruptData, match="000004.jpg"):
        prepare(root, "celeba", spec, root / "data/cache/celeba.pt")
    assert sorted(p.name for p in (root / "data/cache").iterdir()) == [".celeba.lock"]


def test_learnable_miniatures_are_separable_and_cifar_is_complete(tmp_path: Path) -> None:
    """What other teams' pipeline tests rely on: learnable images a nearest-centroid rule
    classifies perfectly, and a CIFAR tarball with every member the real one has."""
    root = tmp_path / "repo"
    root.mkdir()
    for name, spec in (
        ("mnist", write_idx_dataset(tmp_path / "m", num_train=60, learnable=True)),
        ("cifar10", write_cifar10(tmp_path / "c", per_batch=12, learnable=True)),
    ):
        cache = root / f"data/cache/{name}.pt"
        prepare(root, name, spec, cache)
        data = load_cache(cache)
        train = data.train_x.double().flatten(1)
        centroids = torch.stack([train[data.train_y == k].mean(0) for k in range(10)])
        guess = torch.cdist(data.test_x.double().flatten(1), centroids).argmin(1)
        assert torch.equal(guess, data.test_y), name
    import tarfile

    with tarfile.open(tmp_path / "c/cifar-10-python.tar.gz") as tar:
        names = set(tar.getnames())
    assert "cifar-10-batches-py/batches.meta" in names and len(names) == 7
    assert data.meta["classes"][0] == "airplane"
