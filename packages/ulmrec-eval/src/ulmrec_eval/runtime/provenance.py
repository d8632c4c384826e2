"""Whether a file that a pipeline stage wrote still is what its run was made from.

A pipeline run (``ulmrec run``) keeps one record per stage, ``runs/<run>/<stage>/stage.json``, with the
hashes of the stage's inputs (``input_hashes``: ``stage:<dep>`` is the ``output_hash`` of the upstream stage
it was made from) and the size, time and content hash of each file it wrote (``output_files``). A stage folder
may be a link to another run's (a reused stage), and that run may rewrite it later: the files still read
fine, but they are no longer what the downstream stages were made from.

:func:`check_made_from` is what every reader of such a file (``ulmrec eval compare``, ``ulmrec experiment
report``) runs first. It reads the records as plain JSON (this package does not depend on the pipeline), and
files outside a run (no record beside them) pass unchecked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ulmrec_eval.runtime.artifacts import sha256_file
from ulmrec_eval.runtime.errors import InputError

#: The stage record's file name (``manifest.json`` in runs made before 2026-12-04).
STAGE_RECORD = "stage.json"
_LEGACY_RECORD = "manifest.json"
#: How many folders above a file its stage folder may be (``rank/predictions.jsonl``,
#: ``retrieve/retriever/candidates.jsonl``, ``train/model/…``).
_DEPTH = 3


def _record(folder: Path) -> dict[str, Any] | None:
    """The stage record of ``folder`` (None: not a stage folder)."""
    for name in (STAGE_RECORD, _LEGACY_RECORD):
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            raise InputError("unreadable stage record; rerun the stage", path=path) from None
        if isinstance(data, dict) and "stage" in data:
            return data
    return None


def stage_of(path: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """``(stage folder, record)`` of the pipeline stage that wrote ``path``, or None outside a run."""
    folder = Path(path).absolute().parent
    for _ in range(_DEPTH):
        record = _record(folder)
        if record is not None:
            return folder, record
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _where(folder: Path) -> str:
    """``runs/x/retrieve`` or, for a reused stage, ``runs/x/retrieve (a link to runs/cb/retrieve)``."""
    if folder.is_symlink():
        return f"{folder} (a link to {Path(os.path.realpath(folder))})"
    return str(folder)


def _changed(path: Path, stamp: dict[str, Any]) -> bool:
    stat = path.stat()
    if stat.st_size != stamp.get("size"):
        return True
    if stat.st_mtime_ns == stamp.get("mtime_ns"):
        return False
    return stamp.get("sha256") is None or sha256_file(path) != stamp["sha256"]


def check_made_from(path: str | Path) -> None:
    """Refuse ``path`` (one :class:`InputError` line) when the pipeline stage that wrote it is not done, when
    the file changed since, or when a stage it was made from (directly or further up) now holds other outputs
    than the ones it was made from (rerun since, e.g. by another run that shares it). A file outside a run
    passes."""
    file = Path(path)
    found = stage_of(file)
    if found is None:
        return
    folder, record = found
    stage, run = record.get("stage", folder.name), record.get("run") or folder.parent.name
    status = record.get("status")
    if status != "done":
        raise InputError(f"written by stage {stage} of run {run}, which is {status}, not done; finish "
                         "the run first", path=file)
    rel = file.absolute().relative_to(folder).as_posix()
    stamp = (record.get("output_files") or {}).get(rel)
    if stamp is not None and _changed(file, stamp):
        raise InputError(f"changed since stage {stage} of run {run} wrote it; rerun that stage", path=file)
    _check_upstream(file, folder, record, seen=set())


def _check_upstream(file: Path, folder: Path, record: dict[str, Any], *, seen: set[str]) -> None:
    run_dir = folder.parent
    stage = record.get("stage", folder.name)
    for key, made_from in sorted((record.get("input_hashes") or {}).items()):
        if not key.startswith("stage:"):
            continue
        dep = key.split(":", 1)[1]
        dep_folder = run_dir / dep
        dep_record = _record(dep_folder) if dep_folder.is_dir() else None
        if dep_record is None:
            raise InputError(f"stage {stage} of run {run_dir.name} was made from its {dep} stage, which is "
                             f"gone from {dep_folder}; rerun the run", path=file)
        if dep_record.get("output_hash") != made_from or dep_record.get("status") != "done":
            raise InputError(f"stage {stage} of run {run_dir.name} was made from another {dep} than "
                             f"{_where(dep_folder)} holds now ({dep} was rerun since); rerun the run "
                             f"(`ulmrec run` its config) before using it", path=file)
        if dep not in seen:   # every edge is checked; every stage is walked once
            seen.add(dep)
            _check_upstream(file, dep_folder, dep_record, seen=seen)


def check_made_with(made_with: dict[str, Any], asked: dict[str, Any], *, artifact: str | Path,
                    escape: str = "") -> None:
    """Refuse to use an artifact with settings other than those it was made with, for settings that must be
    the same (a model tuned on permuted codes ranks with the same permutation): ``{"--index-permute": 1000}``
    against ``{"--index-permute": None}``; one line naming each setting both ways (``escape``: the option
    that allows it anyway)."""
    def shown(value: Any) -> str:
        return "none" if value is None else str(value)

    differ = [f"{name} {shown(made_with.get(name))} (asked: {shown(asked.get(name))})"
              for name in sorted({*made_with, *asked}) if made_with.get(name) != asked.get(name)]
    if differ:
        allow = f", or {escape} to use it anyway" if escape else ""
        raise InputError(f"it was made with {'; '.join(differ)}: give the same settings{allow}",
                         path=artifact)
