"""Waits for the TUI tests: on the state a check reads or a snapshot pictures, never on a fixed sleep.

"Data arrived" (a screen's ``runs`` filled, a table's ``row_count > 0``) is not "drawn": a ``DataTable`` sizes
its columns on a later idle message, and a worker may still be writing. Nor is "laid out" drawn: a line the
table rendered before its columns were widened stays in its line cache (keyed by an update count that the
widening does not bump) until the resize that follows the new virtual size, which comes on a later screen
update; a picture taken in between shows the cells cut to the labels' widths ("dem" for "demo"). :func:`until`
waits for the condition *and* for every table on the screen to be laid out with its rows *and* drawn with them
(:func:`table_drawn`) *and* for every worker to finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.worker import WorkerState

_BUSY = (WorkerState.PENDING, WorkerState.RUNNING)


def _cell_width(cell: object) -> int:
    """Width of a cell as ``DataTable`` draws it (str cells are console markup)."""
    text = cell if isinstance(cell, Text) else Text.from_markup(str(cell))
    return max((Text(line).cell_len for line in text.plain.splitlines()), default=0)


def table_laid_out(table: DataTable[Any]) -> bool:
    """No size update pending, and every auto-width column as wide as its label and widest cell."""
    if table._updated_cells or table._new_rows or table._require_update_dimensions:
        return False
    for index, column in enumerate(table.ordered_columns):
        if not column.auto_width:
            continue
        cells = [table.get_row_at(row)[index] for row in range(table.row_count)]
        want = max([_cell_width(column.label), *(_cell_width(c) for c in cells)])
        if column.content_width != want:
            return False
    return True


def table_drawn(table: DataTable[Any]) -> bool:
    """The lines the table renders now show its header and its rows' cells in full (as many rows as the
    terminal has lines): every cell that fits in the table's width appears, uncut, at its column's offset
    (rows and header of height 1)."""
    if table.scroll_offset != (0, 0) or table.header_height != 1:
        return True  # scrolled or a tall header: these offsets do not apply; laid out is what is checked
    widths = [column.get_render_width(table) for column in table.ordered_columns]
    starts = [sum(widths[:index]) for index in range(len(widths))]
    padding = table.cell_padding
    visible = min(table.row_count, table.app.size.height)  # the table's own height may lag its rows too
    lines = [([column.label for column in table.ordered_columns], 0)]
    lines += [(list(table.get_row_at(row)), row + 1) for row in range(visible)]
    for cells, y in lines:
        text = table.render_line(y).text
        for cell, start, width in zip(cells, starts, widths, strict=True):
            if start + width > table.size.width:
                break
            plain = (cell if isinstance(cell, Text) else Text.from_markup(str(cell))).plain.split("\n")[0]
            if text[start + padding:start + padding + len(plain)] != plain:
                return False
    return True


def screen_settled(app: Any) -> bool:
    """Every worker done and every ``DataTable`` on the current screen laid out and drawn that way."""
    if any(worker.state in _BUSY for worker in app.workers):
        return False
    tables = list(app.screen.query(DataTable))
    return all(table_laid_out(t) for t in tables) and all(table_drawn(t) for t in tables)


async def until(pilot: Any, check: Callable[[], bool], timeout: float = 30.0, *, settled: bool = True,
                what: str = "condition") -> None:
    """Poll (letting the app run between polls) until ``check()`` holds — and, with ``settled``, the screen
    has settled (:func:`screen_settled`) in the same poll. Raises with the screen's name on timeout."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause()  # process every pending message (idle included), then re-check
        if check() and (not settled or screen_settled(app)):
            await pilot.pause()
            if check() and (not settled or screen_settled(app)):  # still true after one more round
                return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not met in {timeout}s on {type(app.screen).__name__}")
