"""Every screen that a key opens, in one table (:data:`SCREENS`): adding a screen is one entry here.

An entry names the screen's class (``"module:Class"``, imported when the screen is first opened, so that
``ulmrec tui`` starts fast), its key and footer label, and its scope:

* ``"run"``: about one run; the Runs screen opens it on the selected run and the Run screen on its run, with
  bindings ``runs.<name>`` and ``run.<name>``; the class is called with the run folder;
* ``"app"``: from anywhere (binding ``app.<name>``); the class is called with no argument, and the key does
  nothing when that screen is already in front.

The app and those two screens read their bindings from here (:func:`bindings`) and open screens through
:func:`open_screen`; :mod:`ulmrec_app.tui.keys` reads each registered screen's own bindings, so a key map can
remap them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

Scope = Literal["run", "app"]


@dataclass(frozen=True)
class ScreenEntry:
    """One screen a key opens."""

    #: Lowercase name: the binding ids end with it (``runs.results``) and ``open_screen('<name>')`` opens it.
    name: str
    #: Default key (a key map may change it).
    key: str
    #: Footer label.
    description: str
    #: ``"package.module:Class"`` of the screen.
    target: str
    #: ``"run"``: about the selected run (called with its folder); ``"app"``: from anywhere (no argument).
    scope: Scope

    def load(self) -> type[Screen[None]]:
        """The screen class (its module imported now)."""
        module, _, name = self.target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Screen)):
            raise TypeError(f"{self.target} is not a Textual Screen")
        return cls


#: The screens a key opens, in footer order.
SCREENS: tuple[ScreenEntry, ...] = (
    ScreenEntry("system", "s", "System", "ulmrec_app.tui.screens.system:SystemScreen", "app"),
    ScreenEntry("results", "r", "Results", "ulmrec_app.tui.screens.results:ResultsScreen", "run"),
    ScreenEntry("index", "i", "Index", "ulmrec_app.tui.screens.index:IndexScreen", "run"),
)


def entry(name: str) -> ScreenEntry:
    """The registered screen called ``name``."""
    found = next((e for e in SCREENS if e.name == name), None)
    if found is None:
        raise KeyError(f"no screen {name!r}; registered: {', '.join(e.name for e in SCREENS)}")
    return found


def bindings(scope: Scope, prefix: str) -> list[Binding]:
    """The bindings that open the screens of ``scope``, with ids ``<prefix>.<name>``; each runs the action
    ``open_screen('<name>')`` of the app or screen whose ``BINDINGS`` hold it."""
    return [Binding(e.key, f"open_screen({e.name!r})", e.description, id=f"{prefix}.{e.name}")
            for e in SCREENS if e.scope == scope]


def open_screen(app: App[Any], name: str, folder: Path | None = None) -> None:
    """Open the registered screen ``name``: a ``"run"`` screen on ``folder`` (nothing without one), an
    ``"app"`` screen unless it is already in front."""
    found = entry(name)
    cls = found.load()
    if found.scope == "run":
        if folder is not None:
            app.push_screen(cast(Callable[[Path], Screen[None]], cls)(folder))
    elif not isinstance(app.screen, cls):
        app.push_screen(cls())
