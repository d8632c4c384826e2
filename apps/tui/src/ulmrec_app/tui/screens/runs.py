"""The Runs screen: every run with its stages' status, elapsed time and a key figure; start a run."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from ulmrec_app.tui.formatting import human_seconds
from ulmrec_app.tui.processes import start_config
from ulmrec_app.tui.run_views import RunView, list_runs
from ulmrec_app.tui.screens.base import PollingScreen
from ulmrec_app.tui.screens.registry import bindings, open_screen
from ulmrec_app.tui.style import STATUS_STYLE
from ulmrec_app.tui.widgets.table_sync import sync_rows


class RunsScreen(PollingScreen):
    """All runs under the runs folder."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", show=False, id="runs.back"),
        Binding("enter", "open", "Open", show=True, id="runs.open"),
        Binding("n", "new_run", "New run", id="runs.new_run"),
        *bindings("run", "runs"),     # Results, Index, …: screens/registry.py
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunView] = []

    def compose(self) -> ComposeResult:
        yield Static(f"ULMRec runs — {self.runs_dir}", classes="title", id="runs-title")
        table: DataTable[str] = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("run", "stages", "status", "time", "key figure")
        yield table
        yield Static("", classes="hint", id="runs-hint")
        yield Footer()

    def refresh_data(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="runs")
    def _load(self) -> None:
        runs = list_runs(self.runs_dir)
        self.deliver(self._show, runs)

    def _show(self, runs: list[RunView]) -> None:
        self.runs = runs
        table = self.query_one("#runs-table", DataTable)
        selected = self.selected_name()
        rows = []
        for run in runs:
            style = STATUS_STYLE.get(run.status, "")
            figure = next((s.key_figure for s in reversed(run.stages) if s.key_figure), "")
            rows.append((run.name, (run.name, run.strip, f"[{style}]{run.status}[/]",
                                    human_seconds(run.elapsed) or "-", figure)))
        names = [r.name for r in runs]
        if sync_rows(table, rows) and selected in names:
            table.move_cursor(row=names.index(selected))
        hint = self.query_one("#runs-hint", Static)
        hint.update("stages: data users index retrieve align train rank eval  (✓ done ▶ running ✗ failed "
                    "■ stopped)" if runs else f"no runs in {self.runs_dir} yet: press n to start one from a "
                    "config (e.g. configs/demo-cpu.toml)")

    def selected_name(self) -> str | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.runs or table.cursor_row is None or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row].name

    def selected(self) -> RunView | None:
        name = self.selected_name()
        return next((r for r in self.runs if r.name == name), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        from ulmrec_app.tui.screens.run import RunScreen

        run = self.selected()
        if run is not None:
            self.app.push_screen(RunScreen(run.folder))

    def action_open_screen(self, name: str) -> None:
        """Open a registered screen of scope ``"run"`` on the selected run."""
        run = self.selected()
        open_screen(self.app, name, run.folder if run is not None else None)

    def action_new_run(self) -> None:
        from ulmrec_app.tui.screens.prompt import ConfigPrompt

        def started(path: str | None) -> None:
            if path:
                self._start(Path(path))

        self.app.push_screen(ConfigPrompt(), started)

    @work(thread=True, group="actions")
    def _start(self, config: Path) -> None:
        ok, line = start_config(config, self.runs_dir)
        self.app.call_from_thread(self.notify, line, severity="information" if ok else "error")
