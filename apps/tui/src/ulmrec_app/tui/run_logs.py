"""What a stage has written as it ran: the tail of its log, its events, the latest progress and the
training curves (no Textual here)."""

from __future__ import annotations

import os
from pathlib import Path

from ulmrec_app.pipeline.execute import EVENTS_FILE, LOG_FILE
from ulmrec_app.tui.run_views import RunView
from ulmrec_eval.runtime.events import StageEvent, read_events


def log_tail(path: Path, lines: int = 200, max_bytes: int = 256 * 1024) -> list[str]:
    """The last ``lines`` lines of a log (reads at most ``max_bytes`` from its end)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return text.splitlines()[-lines:]


def stage_log(run: RunView, stage: str, lines: int = 200) -> list[str]:
    """The last ``lines`` lines of the stage's ``log.txt``."""
    return log_tail(run.folder / stage / LOG_FILE, lines)


def stage_events(run: RunView, stage: str) -> list[StageEvent]:
    """The stage's ``events.jsonl`` (none when it is missing or unreadable)."""
    try:
        return read_events(run.folder / stage / EVENTS_FILE)
    except Exception:
        return []


def last_progress(events: list[StageEvent]) -> StageEvent | None:
    """The latest event with a step (for the progress bar)."""
    return next((e for e in reversed(events) if e.step is not None), None)


Points = list[tuple[float, float]]


def curves(run: RunView) -> tuple[Points, Points, Points]:
    """Training loss, validation NDCG@10 (the score that selects the adapter) and the learning rate as
    ``(step, value)`` points, from the train stage's events."""
    events = stage_events(run, "train")
    loss = [(float(e.step or i), e.loss) for i, e in enumerate(events) if e.loss is not None]
    ndcg = [(float(e.step or i), v) for i, e in enumerate(events) for k, v in (e.metric or {}).items()
            if k in ("valid/ndcg@10", "ndcg@10")]
    lr = [(float(e.step or i), v) for i, e in enumerate(events) for k, v in (e.metric or {}).items()
          if k == "train/lr"]
    return loss, ndcg, lr
