"""``ulmrec tui``: the Textual app. Screens live in :mod:`ulmrec_app.tui.screens`, styles in ``app.tcss``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from ulmrec_app.tui.screens.registry import bindings, open_screen
from ulmrec_app.tui.screens.runs import RunsScreen


class UlmrecApp(App[None]):
    """Runs → Run (stages, launch/stop/resume, live log) → Results / Index; System from anywhere."""

    CSS_PATH = "app.tcss"
    TITLE = "ULMRec"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        *bindings("app", "app"),      # the screens opened from anywhere (System): screens/registry.py
        Binding("t", "toggle_theme", "Theme", id="app.toggle_theme"),
    ]
    #: Seconds between refreshes of the files a screen shows.
    REFRESH_SECONDS = 1.0

    def __init__(self, runs_dir: Path | str = "runs", *, refresh_seconds: float | None = None,
                 keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        if refresh_seconds is not None:
            self.REFRESH_SECONDS = refresh_seconds
        self.keymap = dict(keymap or {})

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)   # {binding id: keys}, e.g. {"run.launch": "ctrl+l"}
        self.theme = "textual-dark"
        self.push_screen(RunsScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_open_screen(self, name: str) -> None:
        """Open a registered screen of scope ``"app"`` (:mod:`ulmrec_app.tui.screens.registry`)."""
        open_screen(self, name)
