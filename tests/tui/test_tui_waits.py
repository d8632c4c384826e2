"""The TUI tests' wait (``tui_waits``) catches a table laid out but still drawn with its old widths."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import DataTable

sys.path.insert(0, str(Path(__file__).parent))
from tui_waits import table_drawn, table_laid_out, until


class _OneTable(App[None]):
    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(zebra_stripes=True, cursor_type="row")
        table.add_columns("run", "time")
        yield table


def _widen_now(table: DataTable[str]) -> None:
    """What the table's idle handler does (measure the new rows, widen the columns), without the screen
    update that follows it — the moment a snapshot can fall into."""
    new_rows = table._new_rows.copy()
    table._new_rows.clear()
    table._require_update_dimensions = False
    table._update_dimensions(new_rows)


def test_laid_out_but_not_yet_redrawn_is_not_settled() -> None:
    asyncio.run(_laid_out_but_not_yet_redrawn())


async def _laid_out_but_not_yet_redrawn() -> None:
    app = _OneTable()
    async with app.run_test(size=(60, 8)) as pilot:
        table = app.query_one(DataTable)
        await pilot.pause()
        table.clear()
        table.add_row("demo-long", "4m28s", key="demo")
        assert not table_laid_out(table)  # rows arrived, columns not measured
        assert "demo-long" not in table.render_line(1).text  # drawn at the labels' widths, and cached
        _widen_now(table)
        assert table_laid_out(table)  # the columns fit their cells ...
        assert not table_drawn(table)  # ... but the cached line still shows "dem"
        await until(pilot, lambda: table.row_count == 1, timeout=10, what="the row drawn")
        assert table_drawn(table)
        assert table.render_line(1).text.startswith(" demo-long  4m28s ")
