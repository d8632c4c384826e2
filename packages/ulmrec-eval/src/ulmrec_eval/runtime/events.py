"""Progress events of a pipeline stage: one JSON line per event in the file named by ``$ULMREC_EVENTS``.

A stage calls :func:`emit` as it works (``emit(step=10, total=200, loss=1.9)``); the pipeline runner sets
``ULMREC_EVENTS`` to ``runs/<name>/<stage>/events.jsonl`` and ``ULMREC_STAGE`` to the stage name, and both the
terminal progress bar and the TUI read the file back with :func:`read_events` (or :func:`tail_events`, which
continues from a byte offset). Outside the runner the variable is unset and :func:`emit` does nothing, so a
command run by hand pays nothing for it.

Each event is written with one ``write`` on a file opened with ``O_APPEND``, so concurrent writers never
interleave within a line; a reader ignores a final line that has no newline yet (being written).
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import validation_message

#: Version of :class:`StageEvent`; bump it on any incompatible change.
EVENTS_SCHEMA_VERSION = 1
#: Environment variable naming the events file (unset: :func:`emit` is a no-op).
EVENTS_ENV = "ULMREC_EVENTS"
#: Environment variable naming the stage (the default ``stage`` of an event).
STAGE_ENV = "ULMREC_STAGE"

_warned = False


class StageEvent(BaseModel):
    """One progress event: ``step`` of ``total`` done, optionally a training ``loss`` and named metrics.

    All fields but ``schema_version`` and ``time`` are optional; a message-only event is a log line that the
    TUI shows under the progress bar.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = Field(default=EVENTS_SCHEMA_VERSION, description="Version of this schema.")
    time: float = Field(default_factory=time.time, description="Unix time (seconds) of the event.")
    stage: str | None = Field(default=None, description="Pipeline stage, e.g. 'train' (from $ULMREC_STAGE).")
    step: int | None = Field(default=None, ge=0, description="Steps done so far (optimizer steps, users …).")
    total: int | None = Field(default=None, ge=0, description="Steps expected in all, when known.")
    loss: float | None = Field(default=None, description="Training loss at this step (NaN: null).")
    metric: dict[str, float] | None = Field(default=None,
                                            description="Named figures, e.g. {'valid/ndcg@10': 0.21}.")
    message: str | None = Field(default=None, description="A short human-readable line.")

    @field_validator("loss", mode="before")
    @classmethod
    def _plain_float(cls, value: Any) -> Any:
        """numpy / torch scalars become plain floats; non-finite losses become None (JSON has no NaN)."""
        if value is None:
            return None
        value = float(value)
        return value if math.isfinite(value) else None

    @field_validator("metric", mode="before")
    @classmethod
    def _plain_metrics(cls, value: Any) -> Any:
        if value is None:
            return None
        return {str(k): float(v) for k, v in dict(value).items() if v is not None and math.isfinite(float(v))}

    @field_validator("step", "total", mode="before")
    @classmethod
    def _plain_int(cls, value: Any) -> Any:
        return None if value is None else int(value)

    @property
    def fraction(self) -> float | None:
        """``step / total`` in [0, 1] when both are known."""
        if self.step is None or not self.total:
            return None
        return min(1.0, self.step / self.total)


def events_enabled() -> bool:
    """Whether :func:`emit` writes anywhere (``$ULMREC_EVENTS`` is set)."""
    return bool(os.environ.get(EVENTS_ENV))


def emit(**fields: Any) -> StageEvent | None:
    """Append one :class:`StageEvent` built from ``fields`` to ``$ULMREC_EVENTS``; returns it (None if unset).

    ``stage`` defaults to ``$ULMREC_STAGE`` and ``time`` to now. Bad fields raise (a programming error); a
    file that cannot be written only warns once: progress reporting never stops a stage.
    """
    global _warned
    target = os.environ.get(EVENTS_ENV)
    if not target:
        return None
    fields.setdefault("stage", os.environ.get(STAGE_ENV) or None)
    event = StageEvent(**fields)
    line = (event.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write on O_APPEND: lines never interleave
        finally:
            os.close(fd)
    except OSError as exc:
        if not _warned:
            _warned = True
            warnings.warn(f"cannot write progress events to {target}: {exc}", RuntimeWarning, stacklevel=2)
    return event


def tail_events(path: str | Path, offset: int = 0) -> tuple[list[StageEvent], int]:
    """Events from byte ``offset`` on, and the offset to continue from (just after the last whole line).

    A missing file gives ``([], offset)``; a final line without its newline is left for the next call. A
    malformed whole line raises :class:`InputError` naming the file and line.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events: list[StageEvent] = []
    for index, raw in enumerate(data[:end].splitlines()):
        if not raw.strip():
            continue
        try:
            events.append(StageEvent.model_validate_json(raw))
        except ValidationError as exc:
            number = _count_lines(file, offset) + index + 1
            raise InputError(validation_message(StageEvent, exc), path=file, line=number) from None
    return events, offset + end


def _count_lines(file: Path, offset: int) -> int:
    with file.open("rb") as handle:
        return handle.read(offset).count(b"\n")


def read_events(path: str | Path) -> list[StageEvent]:
    """Every complete event in ``path`` (none if the file does not exist)."""
    return tail_events(path, 0)[0]


def progress_bars_wanted() -> bool:
    """Whether a command should draw progress bars: only when stderr is a terminal and no runner collects
    events (``$ULMREC_EVENTS`` unset)."""
    return sys.stderr.isatty() and not events_enabled()


def show_progress(flag: bool | None) -> bool:
    """A command's ``--progress/--no-progress`` choice, or when neither was given (``None``),
    :func:`progress_bars_wanted`: bars on a terminal, none in logs or under the pipeline runner."""
    return progress_bars_wanted() if flag is None else flag
