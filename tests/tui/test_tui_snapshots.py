"""Snapshots (pytest-textual-snapshot) of the main screens of `ulmrec tui` at 80×24, on the fixture runs.

Update after an intended change of the look: ``pytest tests/tui/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tui_fixtures import build_runs
from tui_waits import until

from ulmrec_app.tui.app import UlmrecApp
from ulmrec_app.tui.screens.index import IndexScreen
from ulmrec_app.tui.screens.results import ResultsScreen
from ulmrec_app.tui.screens.run import RunScreen
from ulmrec_app.tui.screens.runs import RunsScreen

pytest.importorskip("pytest_textual_snapshot", reason="pytest-textual-snapshot is not installed")
os.environ["ULMREC_TUI_NO_TORCH"] = "1"
SIZE = (80, 24)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UlmrecApp:
    build_runs(tmp_path)
    monkeypatch.chdir(tmp_path)  # the title shows the runs folder as given: "runs"
    return UlmrecApp(Path("runs"), refresh_seconds=60)  # no refresh during the snapshot


def _runs_loaded(pilot: object) -> Awaitable[None]:
    """The Runs screen with its runs loaded *and* its table laid out with them (not merely data arrived)."""
    app = pilot.app  # type: ignore[attr-defined]
    return until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))


def test_runs_screen(snap_compare: Callable[..., bool], app: UlmrecApp) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_runs_loaded)


def test_run_screen(snap_compare: Callable[..., bool], app: UlmrecApp) -> None:
    async def before(pilot: object) -> None:
        await _runs_loaded(pilot)
        await pilot.press("enter", "down", "down", "down", "down", "down")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, RunScreen)
                     and "train: finished" in "\n".join(app.screen.query_one("#stage-log").lines))

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_failed_stage(snap_compare: Callable[..., bool], app: UlmrecApp) -> None:
    async def before(pilot: object) -> None:
        await _runs_loaded(pilot)
        await pilot.press("down", "enter", "down", "down", "down", "down")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, RunScreen)
                     and "out of memory" in "\n".join(app.screen.query_one("#stage-log").lines))

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_results_metrics(snap_compare: Callable[..., bool], app: UlmrecApp) -> None:
    async def before(pilot: object) -> None:
        await _runs_loaded(pilot)
        await pilot.press("r")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                     and app.screen.query_one("#results-table").row_count > 0)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_results_curves(snap_compare: Callable[..., bool], app: UlmrecApp) -> None:
    async def before(pilot: object) -> None:
        await _runs_loaded(pilot)
        await pilot.press("r")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                     and app.screen.query_one("#results-table").row_count > 0)
        app.screen.query_one("#results-tabs").active = "tab-curves"
        await until(pilot, lambda: app.screen.query_one("#loss-plot").region.width > 0)  # pane laid out

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_index_search(snap_compare: Callable[..., bool], app: UlmrecApp) -> None:
    async def before(pilot: object) -> None:
        await _runs_loaded(pilot)
        await pilot.press("i")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, IndexScreen) and app.screen.view is not None)
        app.screen.query_one("#index-search").focus()
        await pilot.press(*"U005", "enter")  # type: ignore[attr-defined]
        await until(pilot, lambda: "U005" in str(app.screen.query_one("#index-result-text").render()))

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
