"""What every screen shares: the app's runs folder and a timer that re-reads files in a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen


class RunsApp(Protocol):
    """What screens read from the app (:class:`ulmrec_app.tui.app.UlmrecApp`), named here so that screens need
    not import the app that imports them."""

    runs_dir: Path
    REFRESH_SECONDS: float


class PollingScreen(Screen[None]):
    """A screen whose :meth:`refresh_data` runs at mount and then every ``REFRESH_SECONDS`` (in a worker);
    Escape goes back (except on the first screen)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", id="screen.back")]

    @property
    def ulmrec(self) -> RunsApp:
        return cast(RunsApp, self.app)

    @property
    def runs_dir(self) -> Path:
        return self.ulmrec.runs_dir

    def on_mount(self) -> None:
        self.refresh_data()
        self.set_interval(self.ulmrec.REFRESH_SECONDS, self.refresh_data)

    def refresh_data(self) -> None:
        """Start a worker that reads the files and calls back on the UI thread (override)."""

    def deliver(self, show: Callable[..., Any], *args: Any) -> None:
        """From a worker thread: run ``show(*args)`` on the UI thread, unless this screen has been closed
        meanwhile (a worker may finish after the user pressed Escape)."""

        def guarded() -> None:
            if not self.is_attached:
                return
            try:
                show(*args)
            except NoMatches:  # the screen is being taken down
                return

        self.app.call_from_thread(guarded)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
