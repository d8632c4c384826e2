"""The screen registry (``ulmrec_app/tui/screens/registry.py``): every entry loads a Textual screen, its
bindings reach the app, the Runs and Run screens, and no two bindings active on one screen share a key."""

from __future__ import annotations

import pytest
from textual.screen import Screen

from ulmrec_app.tui.app import UlmrecApp
from ulmrec_app.tui.keys import _binding_groups, binding_table
from ulmrec_app.tui.screens.registry import SCREENS, ScreenEntry, entry
from ulmrec_app.tui.screens.run import RunScreen
from ulmrec_app.tui.screens.runs import RunsScreen


@pytest.mark.parametrize("screen", SCREENS, ids=lambda e: e.name)
def test_each_registered_screen_loads_and_is_bound(screen: ScreenEntry) -> None:
    assert issubclass(screen.load(), Screen)
    ids = {row[0] for row in binding_table()}
    owners = {"app": [("app", UlmrecApp)], "run": [("runs", RunsScreen), ("run", RunScreen)]}[screen.scope]
    for prefix, owner in owners:
        assert f"{prefix}.{screen.name}" in ids
        found = [b for b in owner.BINDINGS if getattr(b, "id", None) == f"{prefix}.{screen.name}"]
        assert [(b.key, b.action) for b in found] == [(screen.key, f"open_screen({screen.name!r})")]


def test_names_are_unique_and_unknown_ones_are_refused() -> None:
    names = [e.name for e in SCREENS]
    assert len(names) == len(set(names))
    with pytest.raises(KeyError, match="no screen 'nope'; registered: "):
        entry("nope")


def test_no_two_bindings_of_one_screen_share_a_default_key() -> None:
    keys = {binding_id: key for binding_id, key, _ in binding_table()}
    for screen, ids in _binding_groups().items():
        seen: dict[str, str] = {}
        for binding_id in sorted(ids):
            for key in keys[binding_id].split(","):
                other = seen.setdefault(key.strip(), binding_id)
                # escape: a screen's own Back overrides the Back it inherits from PollingScreen
                assert other == binding_id or key.strip() == "escape", f"{other} and {binding_id} on {screen}"
