"""The Index screen: per-level code-usage histograms, collisions and coherence of a run's user index, and a
search box showing a user's code, texts and the users sharing each prefix of it."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Input, Static

from ulmrec_app.tui.index_view import IndexView, load_index_view, search, summary
from ulmrec_app.tui.screens.base import PollingScreen


class IndexScreen(PollingScreen):
    """The user index of one run (loaded once, in a worker)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.view: IndexView | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"user index — {self.folder.name}", classes="title")
        yield Static("loading …", id="index-summary")
        yield Input(placeholder="user id (or part of it), Enter", id="index-search")
        with VerticalScroll(id="index-result"):
            yield Static("", id="index-result-text")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="index")
    def _load(self) -> None:
        try:
            view = load_index_view(self.folder)
        except Exception as exc:  # a broken index is shown, not raised
            self.deliver(self._show_error, str(exc))
            return
        self.deliver(self._show, view)

    def _show_error(self, message: str) -> None:
        self.query_one("#index-summary", Static).update(f"[red]cannot read the index: {message}[/]")

    def _show(self, view: IndexView | None) -> None:
        self.view = view
        text = summary(view, width=max(self.size.width - 20, 16)) if view else \
            "this run has no user index (yet, or it is the no-index baseline)"
        self.query_one("#index-summary", Static).update(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        result = self.query_one("#index-result-text", Static)
        result.update(search(self.view, event.value) if self.view else "no index loaded")
