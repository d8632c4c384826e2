"""Errors that are the user's to fix: the command line shows them as one line and exits non-zero."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar


class UlmrecError(Exception):
    """Base of all known ULMRec errors (bad input, missing files, inconsistent artifacts).

    Packages may also mark their own error bases with ``user_error = True`` instead of subclassing this one
    (a plugin that does not depend on ``ulmrec-eval`` can still raise one-line errors); :func:`is_user_error`
    checks the marker. ``ulmrec-index`` and ``ulmrec-align`` depend on ``ulmrec-eval`` for this runtime.
    """

    user_error: ClassVar[bool] = True


class InputError(UlmrecError, ValueError):
    """A malformed input record; the message names the file and the 1-based line number when known."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")



class CommandInterruptedError(UlmrecError):
    """Ctrl-C inside a command that kept its work: the message says what was kept and how to continue;
    :func:`ulmrec_eval.runtime.cli.run_app` prints it as the only line and exits with status 130."""

def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a known error to be shown as one line rather than a traceback."""
    if getattr(type(exc), "user_error", False):
        return True
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                        FileExistsError)):
        return True
    return type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic")


def one_line(exc: BaseException) -> str:
    """The one line shown for a user error: ``PATH: no such file or directory`` for a file-system error
    (instead of Python's ``[Errno 2] No such file or directory: 'PATH'``), else ``str(exc)``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror and not getattr(
            type(exc), "user_error", False):
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        return f"{where}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    return str(exc)


_PYDANTIC_PREFIXES = {"value_error": "Value error, ", "assertion_error": "Assertion failed, "}


def error_text(error: Mapping[str, Any]) -> str:
    """The message of one pydantic error (an item of ``ValidationError.errors()``) as a user reads it: a
    validator's own sentence without pydantic's ``"Value error, "`` / ``"Assertion failed, "`` prefix."""
    message = str(error["msg"])
    prefix = _PYDANTIC_PREFIXES.get(str(error.get("type", "")), "")
    return message[len(prefix):] if prefix and message.startswith(prefix) else message
