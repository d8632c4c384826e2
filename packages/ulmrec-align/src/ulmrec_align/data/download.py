"""Download the public Amazon 2014 review files (``ulmrec data download``).

Files stream into ``<name>.part`` beside the target and are renamed into place only when complete (and,
where a checksum is known or given, verified). An interrupted download resumes from the ``.part`` file with an
HTTP ``Range`` request when the server supports it, and restarts otherwise; a finished file is not fetched
again. The sha256 of every completed file is recorded in ``SHA256SUMS`` in the output folder.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ulmrec_eval.runtime.artifacts import sha256_file
from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_eval.runtime.io import atomic_write_text

#: The public per-category files of the 2014 crawl, at the path LlamaRec downloads them from.
DEFAULT_BASE_URL = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
DATASETS: dict[str, tuple[str, ...]] = {
    "amazon-beauty": ("reviews_Beauty_5.json.gz", "meta_Beauty.json.gz"),
    "amazon-games": ("reviews_Video_Games_5.json.gz", "meta_Video_Games.json.gz"),
}
#: sha256 by file name. The crawl publishes none; pass ``--sha256 NAME=HEX`` to pin one yourself.
KNOWN_SHA256: dict[str, str] = {}
SUMS_FILE = "SHA256SUMS"
USER_AGENT = "ulmrec-data-download/0.1"


class DownloadError(UlmrecError):
    """A download failed (HTTP error, truncated body, checksum mismatch)."""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str
    status: Literal["downloaded", "resumed", "present"]
    verified: bool


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def _open(url: str, offset: int, timeout: float):  # type: ignore[no-untyped-def]
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is not a prefix the server can extend: start over
            return None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None


def download_file(url: str, dest: str | Path, *, sha256: str | None = None, force: bool = False,
                  progress: bool = True, timeout: float = 60.0, chunk_size: int = 1 << 16) -> DownloadResult:
    """Fetch ``url`` to ``dest`` via ``dest.part`` (resumed where possible), verify ``sha256`` if given."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256.lower() if sha256 else None
    if dest.is_file() and not force:
        actual = sha256_file(dest)
        if expected is None or actual == expected:
            return DownloadResult(dest, dest.stat().st_size, actual, "present", expected is not None)
    part = dest.with_name(dest.name + ".part")
    if force:
        part.unlink(missing_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset, timeout)
    if response is None:
        part.unlink(missing_ok=True)
        offset = 0
        response = _open(url, 0, timeout)
    with response:
        resumed = offset > 0 and response.status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        with part.open("ab" if resumed else "wb") as handle, _progress(progress) as bar:
            task = bar.add_task(dest.name, total=total, completed=offset)
            try:
                while block := response.read(chunk_size):
                    handle.write(block)
                    received += len(block)
                    bar.update(task, completed=received)
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(f"{url}: connection lost after {received} bytes ({exc}); "
                                    "run the command again to resume") from None
    if total is not None and received != total:
        raise DownloadError(f"{url}: truncated, got {received} of {total} bytes; "
                            "run the command again to resume")
    actual = sha256_file(part)
    if expected is not None and actual != expected:
        part.unlink()
        raise DownloadError(f"{dest.name}: sha256 mismatch (expected {expected}, got {actual}); "
                            "the partial file was removed")
    os.replace(part, dest)
    status: Literal["downloaded", "resumed"] = "resumed" if resumed else "downloaded"
    return DownloadResult(dest, received, actual, status, expected is not None)


def read_sums(folder: Path) -> dict[str, str]:
    """The ``SHA256SUMS`` of ``folder`` (``<hex>  <name>`` lines), or {}."""
    path = folder / SUMS_FILE
    if not path.is_file():
        return {}
    sums: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            sums[name] = digest
    return sums


def download_dataset(name: str, out_dir: str | Path, *, base_url: str = DEFAULT_BASE_URL,
                     checksums: Mapping[str, str] | None = None, force: bool = False,
                     progress: bool = True, timeout: float = 60.0) -> list[DownloadResult]:
    """Download every file of dataset ``name`` (a key of :data:`DATASETS`) into ``out_dir``.

    Checksums come from ``checksums`` (by file name), else :data:`KNOWN_SHA256`, else the folder's own
    ``SHA256SUMS`` from an earlier complete download (which catches a file corrupted since).
    """
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recorded = read_sums(out)
    given = dict(checksums or {})
    unknown = sorted(set(given) - set(DATASETS[name]))
    if unknown:
        raise DownloadError(f"--sha256 given for {', '.join(unknown)}, not a file of {name} "
                            f"({', '.join(DATASETS[name])})")
    results = []
    for file_name in DATASETS[name]:
        url = base_url.rstrip("/") + "/" + file_name
        expected = given.get(file_name) or KNOWN_SHA256.get(file_name) or recorded.get(file_name)
        results.append(download_file(url, out / file_name, sha256=expected, force=force, progress=progress,
                                     timeout=timeout))
        recorded[file_name] = results[-1].sha256
        atomic_write_text(out / SUMS_FILE, "".join(f"{d}  {n}\n" for n, d in sorted(recorded.items())))
    return results

