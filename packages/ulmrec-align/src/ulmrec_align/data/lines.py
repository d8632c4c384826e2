"""Line-by-line reading of plain or gzipped text files, with errors that name the file (and line)."""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ulmrec_eval.runtime.errors import InputError


def _open_binary(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line of a UTF-8 file (gzipped when named ``*.gz``).

    A corrupt or truncated gzip stream raises :class:`InputError` naming the file; bad UTF-8 names the line.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError("file not found", path=file)
    number = 0
    try:
        with _open_binary(file) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"not valid UTF-8 ({exc.reason})", path=file, line=number) from None
                if text.strip():
                    yield number, text
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"unreadable gzip file after line {number} ({exc or type(exc).__name__})",
                         path=file) from None


def finite(value: object, field: str, path: Path, line: int) -> float:
    """``value`` as a finite float; NaN, Infinity, booleans and non-numbers raise :class:`InputError` at
    ``path:line`` (a NaN timestamp would make the time order, and so the split, depend on row order)."""
    if isinstance(value, bool):
        raise InputError(f"{field} must be a number, got {value!r}", path=path, line=line)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{field} must be a number, got {value!r}", path=path, line=line) from None
    if not math.isfinite(number):
        raise InputError(f"{field} must be a finite number, got {value!r}", path=path, line=line)
    return number


def raw_id(value: object, field: str, path: Path, line: int) -> str:
    """``value`` as a non-empty id string; empty or whitespace-only ids raise :class:`InputError`."""
    if value is None or isinstance(value, (dict, list, bool)):
        raise InputError(f"{field} must be a string or a number, got {value!r}", path=path, line=line)
    text = str(value)
    if not text.strip():
        raise InputError(f"{field} is empty", path=path, line=line)
    return text
