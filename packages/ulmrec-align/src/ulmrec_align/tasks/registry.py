"""The task registry: built-ins plus third-party builders from the entry-point group ``ulmrec.tasks``
(``name = "package.module:BuilderClass"``), keyed by the builder's lowercase ``name``."""

from __future__ import annotations

from importlib.metadata import entry_points

from ulmrec_align.tasks.base import TaskBuilder
from ulmrec_align.tasks.builders import (
    HistoryToIndex,
    IndexToPreference,
    IntentPrediction,
    NextItem,
    PreferenceToIndex,
    RatingPrediction,
)
from ulmrec_eval.runtime.errors import InputError

ENTRY_POINT_GROUP = "ulmrec.tasks"
#: The paper's six tasks, in the paper's order.
BUILTIN_TASKS: tuple[type[TaskBuilder], ...] = (NextItem, IndexToPreference, PreferenceToIndex,
                                                HistoryToIndex, RatingPrediction, IntentPrediction)
DEFAULT_TASKS = tuple(t.name for t in BUILTIN_TASKS)


def available_tasks() -> dict[str, type[TaskBuilder]]:
    """Every registered task builder by name (built-ins first, then entry points in name order)."""
    out: dict[str, type[TaskBuilder]] = {t.name: t for t in BUILTIN_TASKS}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.name not in out:
            out[entry.name] = entry.load()
    return out


def get_task(name: str) -> TaskBuilder:
    """A new builder of task ``name``; an unknown name lists the registered ones."""
    tasks = available_tasks()
    if name not in tasks:
        raise InputError(f"unknown task {name!r} (registered: {', '.join(tasks)})")
    return tasks[name]()
