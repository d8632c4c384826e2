"""Small I/O helpers shared by all ULMRec packages: atomic writes, JSON lines with file:line errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ulmrec_eval.runtime.errors import InputError, error_text

M = TypeVar("M", bound=BaseModel)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


#: Name of a writer's side file or folder beside its target, ``.<name>.<kind>-<pid>-<hex>``: ``tmp`` while it
#: is being written, ``old`` for a previous artifact moved aside.
SIDE_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]+$")


def side_path(target: Path, kind: str) -> Path:
    """A fresh :data:`SIDE_NAME` path of this process beside ``target``."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def remove_dead_temporaries(path: str | Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>-<hex>`` files of ``path`` left by writers that were killed; returns them.

    A temporary of a live process (another writer still at work) is kept.
    """
    target = Path(path)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.glob(f".{_glob_escape(target.name)}.tmp-*"):
        match = SIDE_NAME.match(entry.name)
        if (match is None or match["name"] != target.name or pid_alive(int(match["pid"]))
                or not entry.is_file()):
            continue
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed.append(entry)
    return removed


def _glob_escape(name: str) -> str:
    """``name`` with the glob wildcards ``*``, ``?`` and ``[`` escaped."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed onto ``path`` (atomic on POSIX).

    The temporary is ``.<name>.tmp-<pid>-<hex>``: on error it is removed and ``path`` is left as it was; one
    left by a killed writer is deleted by the next write of the same ``path`` (and by
    :func:`ulmrec_eval.runtime.artifacts.clean_orphans`).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(target)
    tmp = side_path(target, "tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # mode 0666 less the umask
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write one JSON document per line (pydantic models are dumped in JSON mode); returns the row count."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            obj = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
            handle.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
            handle.write("\n")
            count += 1
    return count


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object)`` per non-blank line.

    A line that is not UTF-8 or not JSON raises :class:`InputError` naming the file and the line.
    """
    file = Path(path)
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})",
                                 path=file, line=number) from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON ({exc.msg})", path=file, line=number) from None


def read_jsonl_models(path: str | Path, model: type[M]) -> Iterator[M]:
    """Parse each line of a JSON-lines file into ``model``; errors name the file, the line and the field."""
    for _number, record in iter_jsonl_models(path, model):
        yield record


def iter_jsonl_models(path: str | Path, model: type[M]) -> Iterator[tuple[int, M]]:
    """Like :func:`read_jsonl_models`, but yield ``(line_number, record)`` (for later per-line checks)."""
    for number, obj in iter_jsonl(path):
        try:
            yield number, model.model_validate(obj)
        except ValidationError as exc:
            raise InputError(validation_message(model, exc), path=path, line=number) from None


def validation_message(model: type[BaseModel], exc: ValidationError) -> str:
    """One line for a pydantic error: ``invalid <Model>: <field path>: <message>`` (the first error)."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "<record>"
    return f"invalid {model.__name__}: {field}: {error_text(first)}"


def read_json_model(path: str | Path, model: type[M]) -> M:
    """Parse a JSON file into ``model``; bad JSON names the file and line, a bad field the file and field."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        try:
            json.loads(text)
        except json.JSONDecodeError as bad:
            raise InputError(f"malformed JSON ({bad.msg})", path=file, line=bad.lineno) from None
        raise InputError(validation_message(model, exc), path=file) from None
