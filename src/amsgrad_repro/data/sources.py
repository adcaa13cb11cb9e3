"""Getting raw files from a list of sources: URLs with mirrors, local folders, file:// URLs.

A source is tried file by file; the first that yields every file and passes verification
wins. When none does, :class:`DatasetUnavailable` says which dataset, every source tried
and why, and how to point the configuration at a local copy.
"""

from __future__ import annotations

import hashlib
import http.client
import os
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


class DatasetUnavailable(RuntimeError):
    """No configured source could provide the dataset."""


class TruncatedDownload(OSError):
    """The server closed the connection before sending every promised byte."""


@dataclass(frozen=True)
class Source:
    """Where to get a dataset's files, and whether the published md5s must match there
    (``verify: md5``) or only the decoded content (``verify: content``, for re-compressed
    mirrors such as Debian's)."""

    location: str
    verify: str = "md5"
    direct: bool = False  # the location is the (single) file itself, not a folder

    @classmethod
    def parse(cls, entry: str | Mapping[str, Any]) -> Source:
        if isinstance(entry, str):
            return cls(entry)
        return cls(
            str(entry["url"]), str(entry.get("verify", "md5")), bool(entry.get("direct", False))
        )

    def file_location(self, name: str) -> str:
        return self.location if self.direct else self.location.rstrip("/") + "/" + name


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
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


def fetch_files(
    dataset: str,
    files: Mapping[str, str | None],
    sources: Sequence[Source],
    dest: Path,
    check_content: Callable[[Path], None],
) -> Source:
    """Fetch every file of ``files`` (name → published md5 or None) into ``dest`` from the
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
            failures.append(f"  {source.location}: {error}")
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
    )


def _fetch_from(source: Source, files: Mapping[str, str | None], staging: Path) -> None:
    """All files from one source into ``staging``; a published md5 that does not match
    quarantines the file. Errors name the file that failed."""
    if source.direct and len(files) > 1:
        raise ValueError(f"`direct: true` names one file, but {len(files)} are needed")
    for name, md5 in files.items():
        location = source.file_location(name)
        target = staging / name
        try:
            copy_or_download(location, target)
        except FETCH_ERRORS as error:
            raise OSError(f"{name}: {error}") from error
        if source.verify == "md5" and md5 is not None:
            actual = md5sum(target)
            if actual != md5:
                bad = quarantine(target, f"{location}: md5 {actual} != published {md5}")
                raise CorruptData(f"{name}: md5 {actual} != published {md5} (kept as {bad.name})")


def _keep_quarantined(staging: Path, dest: Path) -> None:
    """Move quarantined files next to the dataset folder so the user can inspect them."""
    keep = dest.parent / "quarantine"
    for bad in staging.glob("*.corrupt*"):
        keep.mkdir(parents=True, exist_ok=True)
        os.replace(bad, keep / bad.name)
