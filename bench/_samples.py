"""Shared by the relevance benchmarks: the next_item samples of a samples folder that carry their pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pool_samples(folder: Path, split: str) -> list[Any]:
    """The ``split`` next_item samples with their pool's titles (``choices``); a folder that is not a samples
    folder, or has none, is one line and exit 1."""
    from ulmrec_align.tasks.schema import read_samples
    from ulmrec_eval.runtime.errors import UlmrecError

    try:
        rows = [s for s in read_samples(folder, split) if s.task == "next_item" and s.choices]
    except UlmrecError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not rows:
        raise SystemExit(f"{folder}: no next_item {split} samples with a pool (build with --answer "
                         "relevance)")
    return rows
