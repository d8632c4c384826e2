"""The System screen: GPU, CPU, memory and the disk used by the runs folder (read in a worker)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from ulmrec_app.tui.screens.base import PollingScreen
from ulmrec_app.tui.system import collect, describe


class SystemScreen(PollingScreen):
    """Machine facts, refreshed every few seconds."""

    def compose(self) -> ComposeResult:
        yield Static("system", classes="title")
        yield Static("reading …", id="system-text")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_data()
        self.set_interval(max(5.0, self.ulmrec.REFRESH_SECONDS), self.refresh_data)

    def refresh_data(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="system")
    def _load(self) -> None:
        text = describe(collect(self.runs_dir), self.runs_dir)
        self.deliver(self._show, text)

    def _show(self, text: str) -> None:
        self.query_one("#system-text", Static).update(text)

    def action_back(self) -> None:
        self.app.pop_screen()
