"""The Run screen: the stage graph, each stage's status, and the selected stage's progress and live log.

``l`` launches the selected stage (and whatever it needs) as a detached process, ``x`` stops it (SIGTERM to
its process group; it stays resumable), ``u`` resumes it (``train`` and ``retrieve`` continue from their
checkpoint), ``f`` reruns it even if unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Log, ProgressBar, Static

from ulmrec_app.tui.formatting import human_seconds
from ulmrec_app.tui.processes import launch, stop
from ulmrec_app.tui.run_logs import last_progress, stage_events, stage_log
from ulmrec_app.tui.run_views import GLYPH, RunView, load_run
from ulmrec_app.tui.screens.base import PollingScreen
from ulmrec_app.tui.screens.registry import bindings, open_screen
from ulmrec_app.tui.style import STATUS_STYLE
from ulmrec_app.tui.widgets.table_sync import sync_rows
from ulmrec_eval.runtime.events import StageEvent

ARROW = "→"


@dataclass
class StageDetail:
    run: RunView
    stage: str | None
    log: list[str]
    progress: StageEvent | None


def stage_graph(run: RunView) -> str:
    """The stages as a coloured chain (Rich markup), split over two lines."""
    parts = []
    for row in run.stages:
        style = STATUS_STYLE.get(str(row.status), "dim")
        parts.append(f"[{style}]{GLYPH.get(str(row.status), '?')}{row.name}[/]")
    half = (len(parts) + 1) // 2
    second = ("\n" + ARROW + ARROW.join(parts[half:])) if parts[half:] else ""
    return ARROW.join(parts[:half]) + second


class RunScreen(PollingScreen):
    """One run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("l", "launch", "Launch", id="run.launch"),
        Binding("x", "stop", "Stop", id="run.stop"),
        Binding("u", "resume", "Resume", id="run.resume"),
        Binding("f", "rerun", "Rerun", id="run.rerun"),
        *bindings("run", "run"),      # Results, Index, …: screens/registry.py
    ]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.run_view: RunView | None = None
        self._log_shown: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(f"run {self.folder.name}", classes="title", id="run-title")
        with Horizontal(id="run-body"):
            with Vertical(id="stage-pane"):
                yield Static("", id="stage-graph")
                table: DataTable[str] = DataTable(id="stages-table", cursor_type="row")
                table.add_columns("stage", "status", "time", "figure")
                yield table
            with Vertical(id="detail-pane"):
                yield Static("", id="stage-status")
                yield ProgressBar(id="stage-progress", show_eta=False)
                yield Log(id="stage-log", highlight=False)
        yield Footer()

    # ------------------------------------------------------------------------------------------ reading
    def refresh_data(self) -> None:
        self._load(self.selected_stage())

    @work(thread=True, exclusive=True, group="run")
    def _load(self, stage: str | None) -> None:
        run = load_run(self.folder)
        if stage is None and run.stages:
            running = [s.name for s in run.stages if s.status == "running"]
            stage = running[0] if running else run.stages[0].name
        log = stage_log(run, stage) if stage else []
        progress = last_progress(stage_events(run, stage)) if stage else None
        self.deliver(self._show, StageDetail(run, stage, log, progress))

    def _show(self, detail: StageDetail) -> None:
        run = detail.run
        self.run_view = run
        description = f" — {run.info.description}" if run.info and run.info.description else ""
        self.query_one("#run-title", Static).update(f"run {run.name}{description}")
        self.query_one("#stage-graph", Static).update(stage_graph(run))
        table = self.query_one("#stages-table", DataTable)
        current = self.selected_stage() or detail.stage
        rows = []
        for row in run.stages:
            style = STATUS_STYLE.get(str(row.status), "dim")
            status = "reused" if row.reused_from and row.status == "done" else str(row.status)
            rows.append((row.name, (row.name, f"[{style}]{status}[/]", human_seconds(row.elapsed),
                                    row.key_figure)))
        names = [s.name for s in run.stages]
        if sync_rows(table, rows) and current in names:
            table.move_cursor(row=names.index(current))
        self._show_stage(detail)

    def _show_stage(self, detail: StageDetail) -> None:
        row = detail.run.stage(detail.stage) if detail.stage else None
        status = self.query_one("#stage-status", Static)
        bar = self.query_one("#stage-progress", ProgressBar)
        if row is None:
            status.update("no stages yet")
            return
        style = STATUS_STYLE.get(str(row.status), "dim")
        first = f"[b]{row.name}[/b]: [{style}]{row.status}[/]"
        if row.status == "running" and row.pid:
            first += f" (pid {row.pid})"
        if row.resumed:
            first += ", resumed"
        if row.reused_from:
            first += f", reused from {row.reused_from}"
        second = row.error or ""
        if row.status == "failed" and not row.error:
            second = "its process died; last log lines below"
        event = detail.progress
        if event is not None and row.status == "running":
            parts = [f"step {event.step}" + (f"/{event.total}" if event.total else "")]
            if event.loss is not None:
                parts.append(f"loss {event.loss:.4f}")
            second = ", ".join(parts)
        status.update(f"{first}\n{second}")
        if event is not None and event.total:
            bar.update(total=event.total, progress=event.step or 0)
        elif row.status == "done":
            bar.update(total=1, progress=1)
        elif row.status == "running":
            bar.update(total=None)          # no step count yet: the bar pulses
        else:
            bar.update(total=1, progress=0)
        if detail.log != self._log_shown:
            log = self.query_one("#stage-log", Log)
            log.clear()
            log.write_lines(detail.log)
            self._log_shown = detail.log

    def selected_stage(self) -> str | None:
        if self.run_view is None or not self.run_view.stages:
            return None
        table = self.query_one("#stages-table", DataTable)
        index = table.cursor_row
        if index is None or index >= len(self.run_view.stages):
            return None
        return self.run_view.stages[index].name

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.run_view is not None:
            self._load(self.selected_stage())

    # ------------------------------------------------------------------------------------------ actions
    def _act(self, kind: str) -> None:
        stage = self.selected_stage()
        if self.run_view is None or stage is None:
            return
        self._action(kind, self.run_view, stage)

    @work(thread=True, group="actions")
    def _action(self, kind: str, run: RunView, stage: str) -> None:
        if kind == "stop":
            ok, line = stop(run, self.runs_dir, stage)
        else:
            ok, line = launch(run, self.runs_dir, stage, force=kind == "rerun")
            if ok:
                line = f"{kind} {stage}: {line}"
        self.app.call_from_thread(self.notify, line, severity="information" if ok else "error")
        self.deliver(self.refresh_data)

    def action_launch(self) -> None:
        self._act("launch")

    def action_stop(self) -> None:
        self._act("stop")

    def action_resume(self) -> None:
        self._act("resume")

    def action_rerun(self) -> None:
        self._act("rerun")

    def action_open_screen(self, name: str) -> None:
        """Open a registered screen of scope ``"run"`` on this run."""
        open_screen(self.app, name, self.folder)
