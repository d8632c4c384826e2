"""The record of one pipeline stage: ``runs/<name>/<stage>/stage.json``, one model for every stage.

(Runs made before 2026-12-04 wrote it as ``manifest.json``, the name a prepared dataset's own manifest also
has; it is read from there when ``stage.json`` is absent, and the next write uses the new name.)

The runner writes it when a stage starts (``running``, with the pid of the stage's process group) and the
stage's own wrapper process rewrites it when the stage ends, so the record survives the terminal that
started the run. Readers (the runner's skip check, the TUI) use :meth:`StageManifest.effective_status`,
which reports a ``running`` stage whose process is gone as ``failed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ulmrec_eval.runtime.artifacts import sha256_file
from ulmrec_eval.runtime.io import atomic_write_text, read_json_model

#: Version of :class:`StageManifest`; bump it on any incompatible change.
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "stage.json"
#: Where runs written before the rename keep their stage record.
LEGACY_MANIFEST_NAME = "manifest.json"

Status = Literal["pending", "running", "done", "failed", "stopped"]
STATUSES: tuple[Status, ...] = ("pending", "running", "done", "failed", "stopped")
#: Distributions whose versions every manifest records.
#: Output files up to this size get a content hash in :attr:`StageManifest.output_files`.
OUTPUT_HASH_LIMIT = 512 * 1024 * 1024
TRACKED_PACKAGES = ("ulmrec", "ulmrec-eval", "ulmrec-index", "ulmrec-align", "torch", "transformers", "peft",
                    "sentence-transformers", "numpy", "pydantic")


class FileStamp(BaseModel):
    """Size, modification time and (under a size limit) content hash of one output file."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(description="Bytes.")
    mtime_ns: int = Field(description="Modification time, ns since the epoch.")
    sha256: str | None = Field(default=None, description="Content hash (None: file above the hash limit).")


class StageManifest(BaseModel):
    """What a stage ran with and what it produced; a stage is skipped when config and inputs hash the same."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = Field(default=MANIFEST_SCHEMA_VERSION, description="Version of this schema.")
    stage: str = Field(description="Stage name: data, users, index, retrieve, align, train, rank, eval.")
    run: str = Field(default="", description="Run name (the folder under the runs directory).")
    status: Status = Field(default="pending", description="pending, running, done, failed or stopped.")
    config_hash: str = Field(default="", description="sha256 of the stage's settings (its options).")
    input_hashes: dict[str, str] = Field(default_factory=dict,
                                         description="sha256 per input: upstream outputs, files.")
    effective_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per command, every option's value as run, defaults included "
                                          "(empty in manifests older than this record).")
    code_versions: dict[str, str] = Field(
        default_factory=dict, description="Versions of the packages whose commands the stage ran.")
    output_hash: str | None = Field(default=None, description="sha256 over the stage's outputs, once done.")
    output_files: dict[str, FileStamp] = Field(
        default_factory=dict, description="Each output file (relative to the stage) as written, checked "
                                          "before a later stage uses it (empty in older manifests).")
    commands: list[list[str]] = Field(default_factory=list, description="The `ulmrec …` argv lists it runs.")
    outputs: list[str] = Field(default_factory=list, description="Output paths, relative to the stage.")
    package_versions: dict[str, str] = Field(default_factory=dict, description="Installed distributions.")
    host: str = Field(default="", description="Host name of the machine that ran it.")
    device: str = Field(default="", description="Device, e.g. 'cpu' or 'cuda: NVIDIA H200'.")
    pid: int | None = Field(default=None, description="Process (group leader) running the stage.")
    pid_start: float | None = Field(default=None, description="Start time of `pid` (against pid reuse).")
    started: float | None = Field(default=None, description="Unix time the stage started.")
    finished: float | None = Field(default=None, description="Unix time the stage ended (any status).")
    exit_code: int | None = Field(default=None, description="Exit status of the failing command, if any.")
    resumed: bool = Field(default=False, description="Whether this attempt continued from a checkpoint.")
    reused_from: str | None = Field(default=None, description="Stage folder of another run that it reuses.")
    figures: dict[str, float | int | str] = Field(default_factory=dict,
                                                  description="Key figures, e.g. {'test/ndcg@10': 0.31}.")
    error: str | None = Field(default=None, description="One line saying why it failed.")

    @property
    def elapsed(self) -> float | None:
        """Seconds from start to end (to now while running)."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def effective_status(self) -> Status:
        """``status``, except that a ``running`` stage whose process no longer exists is ``failed``."""
        if self.status == "running" and not process_alive(self.pid, self.pid_start):
            return "failed"
        return self.status

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/stage.json`` atomically (and drop a legacy ``manifest.json`` record); returns its
        path."""
        path = Path(folder) / MANIFEST_NAME
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")
        legacy = Path(folder) / LEGACY_MANIFEST_NAME
        if legacy.is_file() and _is_stage_record(legacy):
            legacy.unlink(missing_ok=True)
        return path

    @classmethod
    def path_in(cls, folder: str | Path) -> Path:
        """``folder/stage.json``, or the legacy ``manifest.json`` of an older run when only that exists."""
        path = Path(folder) / MANIFEST_NAME
        legacy = Path(folder) / LEGACY_MANIFEST_NAME
        if not path.is_file() and legacy.is_file() and _is_stage_record(legacy):
            return legacy
        return path

    @classmethod
    def load(cls, folder: str | Path) -> StageManifest:
        """Read the stage record of ``folder`` (errors name the file and the field)."""
        return read_json_model(cls.path_in(folder), cls)

    @classmethod
    def load_or_none(cls, folder: str | Path) -> StageManifest | None:
        """Like :meth:`load`, but None when the folder has no stage record."""
        return cls.load(folder) if cls.path_in(folder).is_file() else None


def _is_stage_record(path: Path) -> bool:
    """Whether a ``manifest.json`` is a stage record (it has ``stage``), not some other manifest."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True   # unreadable: let the reader report it with the file named
    return isinstance(data, dict) and "stage" in data


def process_start_time(pid: int) -> float | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return float(fields[19])  # field 22 of stat: starttime
    except (IndexError, ValueError):
        return None


def process_alive(pid: int | None, start: float | None = None) -> bool:
    """Whether ``pid`` exists (and, when ``start`` is given and knowable, is the same process); a zombie is
    not alive."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rfind(")") + 2:].split()[0] == "Z":
            return False
    except OSError:
        pass
    if start is not None:
        now = process_start_time(pid)
        if now is not None and now != start:
            return False
    return True


def sha256_json(obj: Any) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_path(path: str | Path, *, skip: tuple[str, ...] = ()) -> str:
    """sha256 over a file, or over a folder's files (relative names and contents, sorted; names in ``skip``
    and hidden entries such as locks and temporary folders left out)."""
    root = Path(path)
    digest = hashlib.sha256()
    if root.is_file():
        _update_file(digest, root)
        return digest.hexdigest()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if file.name in skip or any(part.startswith(".") for part in file.relative_to(root).parts):
            continue
        digest.update(rel.encode("utf-8") + b"\0")
        _update_file(digest, file)
    return digest.hexdigest()


def _output_files(folder: Path, outputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in outputs:
        path = folder / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file()
                         and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return files


def stamp_outputs(folder: str | Path, outputs: list[str], *,
                  hash_limit: int = OUTPUT_HASH_LIMIT) -> dict[str, FileStamp]:
    """:class:`FileStamp` of every file of ``outputs`` (files or folders under ``folder``; hidden entries
    left out); content hashed for files of at most ``hash_limit`` bytes."""
    root = Path(folder)
    stamps: dict[str, FileStamp] = {}
    for file in _output_files(root, outputs):
        st = file.stat()
        sha = sha256_file(file) if st.st_size <= hash_limit else None
        stamps[file.relative_to(root).as_posix()] = FileStamp(size=st.st_size, mtime_ns=st.st_mtime_ns,
                                                              sha256=sha)
    return stamps


def changed_outputs(folder: str | Path, stamps: dict[str, FileStamp], outputs: list[str]) -> list[str]:
    """Output files that differ from ``stamps``: missing, added, another size, or touched with other content
    (a file whose mtime moved is re-hashed when its hash was recorded; otherwise it counts as changed).
    Cheap when nothing changed: one ``stat`` per file."""
    root = Path(folder)
    now = {f.relative_to(root).as_posix(): f for f in _output_files(root, outputs)}
    changed = sorted(set(now) ^ set(stamps))
    for name in sorted(set(now) & set(stamps)):
        stamp, st = stamps[name], now[name].stat()
        if st.st_size != stamp.size:
            changed.append(name)
        elif st.st_mtime_ns != stamp.mtime_ns:
            if stamp.sha256 is None:
                changed.append(name)
                continue
            if sha256_file(now[name]) != stamp.sha256:
                changed.append(name)
    return sorted(changed)


def _update_file(digest: Any, file: Path) -> None:
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
