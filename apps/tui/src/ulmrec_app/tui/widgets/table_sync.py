"""Refresh a ``DataTable`` in place: when its rows are the same (by key, in order) only the cells that changed
are updated (and their columns re-measured, so a cell that grows is never cut), so the cursor, scroll position
and selection survive the screens' once-a-second refresh; it is cleared and refilled only when rows appear,
disappear or move."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable


def sync_rows(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]]) -> bool:
    """Make ``table`` show ``rows`` (``(key, cells)`` each); returns True when it had to be refilled."""
    keys = [key for key, _ in rows]
    if [row_key.value for row_key in table.rows] == keys:
        columns = list(table.columns)
        for key, cells in rows:
            for column, new, old in zip(columns, cells, table.get_row(key), strict=False):
                if new != old:
                    table.update_cell(key, column, new, update_width=True)
        return False
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    return True
