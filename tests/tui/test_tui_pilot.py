"""`ulmrec tui` driven with Textual's pilot: each screen and action, on a fixture runs folder and on real
tiny runs (launch a stage and watch it finish; stop a stage and resume it)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import manifest, maybe_manifest, tiny_config, ulmrec, write_config
from tui_fixtures import build_runs, fixture_predictions
from tui_waits import table_laid_out
from tui_waits import until as wait_until

from ulmrec_app.tui.app import UlmrecApp
from ulmrec_app.tui.screens.index import IndexScreen
from ulmrec_app.tui.screens.prompt import ConfigPrompt
from ulmrec_app.tui.screens.results import ResultsScreen
from ulmrec_app.tui.screens.run import RunScreen
from ulmrec_app.tui.screens.runs import RunsScreen
from ulmrec_app.tui.screens.system import SystemScreen
from ulmrec_eval.evaluation import evaluate

os.environ["ULMREC_TUI_NO_TORCH"] = "1"
SIZE = (80, 24)


async def until(pilot: object, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for ``check`` on the data the screens hold (cells, lines, fields): these tests read data, not
    the drawn picture, so the screens' 0.1–0.2 s refresh workers may keep running (snapshots wait more)."""
    await wait_until(pilot, check, timeout, settled=False)


async def open_results(app: UlmrecApp, pilot: object, table: str) -> None:
    """From the Runs screen, open the first run's Results screen and wait until ``table`` has rows."""
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))
    await pilot.press("r")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                and app.screen.query_one(table).row_count > 0)


def _cells(table: object) -> list[list[str]]:
    """The table's cells as plain text (markup removed)."""
    from rich.text import Text

    rows = []
    for row in range(table.row_count):  # type: ignore[attr-defined]
        cells = table.get_row_at(row)  # type: ignore[attr-defined]
        rows.append([c.plain if isinstance(c, Text) else Text.from_markup(str(c)).plain for c in cells])
    return rows


def _text(widget: object) -> str:
    return str(widget.render())  # type: ignore[attr-defined]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return build_runs(tmp_path)


def test_runs_screen_lists_runs_with_stage_status(runs: Path) -> None:
    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))
            rows = _cells(app.screen.query_one("#runs-table"))
            assert [r[0] for r in rows] == ["demo", "demo-noindex"]
            assert rows[0][1] == "✓" * 8
            assert rows[0][2] == "done"
            assert rows[1][2] == "failed"
            assert rows[1][1] == "✓✓✓■✗ "
            await pilot.press("t")
            assert app.theme == "textual-light"
            await pilot.press("t")
            assert app.theme == "textual-dark"

    asyncio.run(go())


def test_tables_refresh_in_place_and_keep_the_cursor(runs: Path) -> None:
    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))
            table = app.screen.query_one("#runs-table")
            cleared: list[int] = []
            real_clear = table.clear
            table.clear = lambda *a, **k: (cleared.append(1), real_clear(*a, **k))[1]  # type: ignore[method-assign]
            await pilot.press("down")
            screen = app.screen
            shown: list[int] = []
            real_show = screen._show  # type: ignore[attr-defined]
            screen._show = lambda runs: (shown.append(1), real_show(runs))[1]  # type: ignore[attr-defined]
            await until(pilot, lambda: len(shown) >= 3)  # several refreshes of unchanged runs
            assert cleared == []
            assert table.cursor_row == 1

    asyncio.run(go())


def test_a_keymap_remaps_bindings_by_id(runs: Path, tmp_path: Path) -> None:
    from ulmrec_app.tui.keys import binding_table, read_keymap
    from ulmrec_eval.runtime.errors import InputError

    ids = [row[0] for row in binding_table()]
    assert len(ids) == len(set(ids))
    assert {"run.launch", "run.stop", "runs.results"} <= set(ids)
    keys = tmp_path / "keys.toml"
    keys.write_text('"runs.results" = "R"\n"app.toggle_theme" = "ctrl+t"\n')
    keymap = read_keymap(keys)
    (tmp_path / "bad.toml").write_text('"run.lunch" = "L"\n')
    with pytest.raises(InputError, match=r"bad.toml: 'run.lunch' is not a binding id"):
        read_keymap(tmp_path / "bad.toml")

    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2, keymap=keymap)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))
            await pilot.press("t")                       # remapped away: nothing
            assert app.theme == "textual-dark"
            await pilot.press("ctrl+t")
            assert app.theme == "textual-light"
            await pilot.press("r")
            await pilot.pause()                          # the key and everything it queued processed
            assert isinstance(app.screen, RunsScreen)
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ResultsScreen))

    asyncio.run(go())


def test_run_screen_shows_a_failed_stage_with_its_last_log_lines(runs: Path) -> None:
    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))
            await pilot.press("down", "enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run_view is not None)
            screen = app.screen
            assert isinstance(screen, RunScreen)
            stages = [r[0] for r in _cells(screen.query_one("#stages-table"))]
            assert stages == ["data", "retrieve", "align", "train", "rank", "eval"]
            for _ in range(4):
                await pilot.press("down")
            await until(pilot, lambda: "out of memory" in "\n".join(screen.query_one("#stage-log").lines)
                        and "rank: failed" in _text(screen.query_one("#stage-status")))
            status = _text(screen.query_one("#stage-status"))
            assert "rank: failed" in status
            assert "exited with 1: out of memory" in status
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen)

    asyncio.run(go())


def test_results_screen_shows_the_experiment_report_of_the_run(runs: Path) -> None:
    """The Experiment tab shows the tables of the newest report whose runs include this run (a report
    written by `ulmrec experiment report`, read back through its pydantic model)."""
    from ulmrec_app.experiment.model import ExperimentReport, VariantRow
    from ulmrec_eval.schemas import MetricComparison

    comparison = MetricComparison(metric="ndcg@10", n_users=30, mean_a=0.4, mean_b=0.35, difference=-0.05,
                                  relative=-0.125, ci_low=-0.09, ci_high=-0.01, confidence=0.95,
                                  p_value=0.02, n_resamples=1000, seed=0, wins=5, losses=12, ties=13)
    report = ExperimentReport(
        runs=["demo", "demo-noindex"], n_candidates=10, chance_loss=2.302585, learned=False,
        rows=[VariantRow(variant="full", seeds=[0], n_users=30, subset={"ndcg@10": 0.4, "recall@1": 0.1},
                         overall={"ndcg@10": 0.2}, buckets={}, cold_users=4, cold_subset={"ndcg@10": 0.31},
                         last_next_item_loss=2.44, steps=40)],
        comparisons={"noindex − full": [comparison]})
    folder = runs / "demo-experiment" / "report"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(report.model_dump_json(), encoding="utf-8")

    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot, "#report-variants")
            app.screen.query_one("#results-tabs").active = "tab-experiment"
            await until(pilot, lambda: "report.json" in _text(app.screen.query_one("#report-verdict")))
            assert _cells(app.screen.query_one("#report-variants"))[0] == [
                "full", "0", "30", "0.4000", "0.1000", "0.2000", "4", "0.3100", "2.440", "40"]
            assert _cells(app.screen.query_one("#report-pairs"))[0] == [
                "noindex − full", "ndcg@10", "30", "0.4000", "0.3500", "-0.0500", "[-0.0900, -0.0100]",
                "0.02"]
            verdict = _text(app.screen.query_one("#report-verdict"))
            assert "report.json: 2 runs" in verdict
            assert "has not learned" in verdict

    asyncio.run(go())


def test_results_screen_metric_table_published_column_and_curves(runs: Path) -> None:
    expected = evaluate(fixture_predictions(40, 0), retrieved_n=20).scope("overall").metrics["ndcg@10"]

    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot, "#results-table")
            table = app.screen.query_one("#results-table")
            labels = [str(c.label.plain) for c in table.columns.values()]
            assert labels[:4] == ["scope", "metric", "retriever", "demo"]
            assert labels[4] == "LlamaRec LRURec"  # the published column, labelled (and in italics)
            rows = _cells(table)
            overall = next(r for r in rows if r[:2] == ["overall", "ndcg@10"])
            assert overall[3] == f"{expected:.4f}"
            assert overall[4] == "0.0533"
            assert next(r for r in rows if r[:2] == ["subset", "ndcg@10"])[4] == ""
            assert "LlamaRec (arXiv 2311.02089)" in _text(app.screen.query_one("#results-note"))
            loss = app.screen.query_one("#loss-plot")
            assert len(loss.points) == 40
            assert loss.points[-1][1] == pytest.approx(2.5 / 6)
            assert len(app.screen.query_one("#ndcg-plot").points) == 4   # train/lr is not a validation
            lr = app.screen.query_one("#lr-plot").points
            assert len(lr) == 40
            assert max(v for _, v in lr) == pytest.approx(1e-3 * 36 / 40)

    asyncio.run(go())


def test_index_screen_histogram_and_user_search(runs: Path) -> None:
    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, IndexScreen) and app.screen.view is not None)
            summary = _text(app.screen.query_one("#index-summary"))
            assert "40 users, 3 levels, codebooks 4/4/4, collisions 0" in summary
            assert "4/4 used" in summary
            app.screen.query_one("#index-search").focus()
            await pilot.press(*"U005", "enter")
            await until(pilot, lambda: "U005" in _text(app.screen.query_one("#index-result-text")))
            result = _text(app.screen.query_one("#index-result-text"))
            assert "U005" in result
            assert "<a_1><b_1><c_0>" in result
            assert "<a_1>: 9 other users" in result    # u % 4 == 1 among 40 users, minus U005
            assert "review 0 by U005" in result

    asyncio.run(go())


def test_system_screen(runs: Path) -> None:
    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, SystemScreen)
                        and "CPU" in _text(app.screen.query_one("#system-text")))
            text = _text(app.screen.query_one("#system-text"))
            assert f"{os.cpu_count()} cores" in text
            assert "GPU" in text
            assert f"runs ({runs})" in text
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen)

    asyncio.run(go())


def _stage_status(app: UlmrecApp, stage: str) -> str | None:
    screen = app.screen
    if not isinstance(screen, RunScreen) or screen.run_view is None:
        return None
    row = screen.run_view.stage(stage)
    return None if row is None else str(row.status)


async def _open_run_at(app: UlmrecApp, pilot: object, stage_index: int) -> None:
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.runs))
    await pilot.press("enter")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run_view is not None)
    for _ in range(stage_index):
        await pilot.press("down")  # type: ignore[attr-defined]
    await until(pilot, lambda: app.screen.selected_stage() is not None)  # type: ignore[attr-defined]


def test_launch_a_stage_and_watch_it_finish(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tiny_config(tmp_path)
    assert ulmrec("run", str(config), "--runs", str(runs), "--stage", "data").returncode == 0

    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await _open_run_at(app, pilot, 1)
            assert app.screen.selected_stage() == "users"  # type: ignore[attr-defined]
            assert _stage_status(app, "users") == "missing"
            await pilot.press("l")
            await until(pilot, lambda: _stage_status(app, "users") == "done", timeout=90)
            log = "\n".join(app.screen.query_one("#stage-log").lines)
            assert "wrote 40 users" in log
            first = manifest(runs / "tiny", "users")["finished"]
            await pilot.press("f")  # rerun although unchanged
            await until(pilot, lambda: maybe_manifest(runs / "tiny", "users").get("status") == "done"
                        and maybe_manifest(runs / "tiny", "users").get("finished") != first, timeout=90)

    asyncio.run(go())
    assert manifest(runs / "tiny", "users")["status"] == "done"


def test_start_a_run_from_a_config(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tiny_config(tmp_path, "fresh", stages='["data"]')

    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            assert "no runs in" in _text(app.screen.query_one("#runs-hint"))
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, ConfigPrompt))
            await pilot.press(*str(config), "enter")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and any(
                r.name == "fresh" and r.status == "done" for r in app.screen.runs), timeout=90)

    asyncio.run(go())


def test_stop_and_resume_a_stage(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "sr.toml", 'name = "sr"\nstages = ["data", "retrieve"]\n'
                                                "[data.synthetic]\nusers = 40\nitems = 30\n"
                                                "[retrieve]\nepochs = 400\npatience = 400\nthreads = 1\n")
    assert ulmrec("run", str(config), "--runs", str(runs), "--stage", "data").returncode == 0
    checkpoint = runs / "sr" / "retrieve" / "retriever" / "checkpoint.safetensors"

    async def go() -> None:
        app = UlmrecApp(runs, refresh_seconds=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await _open_run_at(app, pilot, 1)
            await pilot.press("l")
            await until(pilot, lambda: _stage_status(app, "retrieve") == "running" and checkpoint.exists(),
                        timeout=180)
            await pilot.press("x")
            await until(pilot, lambda: _stage_status(app, "retrieve") == "stopped", timeout=180)
            await until(pilot, lambda: not (runs / ".sr.lock").read_text().strip(), timeout=90)
            await pilot.press("u")
            # running, resumed, and its stage process has recorded itself (host set): it is past start-up
            await until(pilot, lambda: _stage_status(app, "retrieve") == "running"
                        and bool(maybe_manifest(runs / "sr", "retrieve").get("resumed"))
                        and bool(maybe_manifest(runs / "sr", "retrieve").get("host")), timeout=180)
            assert "--resume" in " ".join(manifest(runs / "sr", "retrieve")["commands"][0])  # type: ignore[index]
            await pilot.press("x")
            await until(pilot, lambda: _stage_status(app, "retrieve") == "stopped", timeout=180)

    asyncio.run(go())


def test_a_cell_that_grows_in_place_widens_its_column() -> None:
    """The in-place refresh (``sync_rows`` with the same keys) re-measures the columns it changed: a time
    going from "59s" to "1h02m03s" is drawn whole, not cut to the old width."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from ulmrec_app.tui.widgets.table_sync import sync_rows

    class One(App[None]):
        def compose(self) -> ComposeResult:
            table: DataTable[str] = DataTable(id="t")
            table.add_columns("run", "time")
            yield table

    async def go() -> None:
        app = One()
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one("#t", DataTable)
            assert sync_rows(table, [("a", ("a", "59s"))]) is True
            await wait_until(pilot, lambda: table_laid_out(table), settled=False)
            assert sync_rows(table, [("a", ("a", "1h02m03s"))]) is False   # in place
            await wait_until(pilot, lambda: table_laid_out(table), settled=False, timeout=5)
            assert table.ordered_columns[1].content_width == len("1h02m03s")

    asyncio.run(go())
