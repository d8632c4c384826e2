"""The Results screen: metric tables (subset and overall, by K) of this run and every other run with results,
a labelled column of published figures, training-loss / validation-NDCG curves as terminal plots, and the
tables of the newest experiment report (``ulmrec experiment report``) that covers this run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from ulmrec_app.experiment.model import ExperimentReport
from ulmrec_app.pipeline.layout import RunLayout
from ulmrec_app.pipeline.results import Row, run_rows
from ulmrec_app.tui.published import Published, published_for
from ulmrec_app.tui.run_logs import curves
from ulmrec_app.tui.run_views import list_runs, load_run
from ulmrec_app.tui.screens.base import PollingScreen
from ulmrec_app.tui.widgets.plot import LinePlot

METRICS = ("recall", "ndcg", "mrr")


@dataclass
class ResultsData:
    columns: list[str] = field(default_factory=list)
    rows: dict[str, list[Row]] = field(default_factory=dict)    # column -> rows
    published: list[Published] = field(default_factory=list)
    dataset: str | None = None
    loss: list[tuple[float, float]] = field(default_factory=list)
    ndcg: list[tuple[float, float]] = field(default_factory=list)
    lr: list[tuple[float, float]] = field(default_factory=list)
    report: ExperimentReport | None = None
    report_path: Path | None = None


def dataset_name(run_dir: Path) -> str | None:
    from ulmrec_align.data.prepared import MANIFEST

    try:
        data = json.loads((RunLayout(run_dir).dataset / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name else None


def find_report(folder: Path, runs_dir: Path) -> tuple[Path, ExperimentReport] | None:
    """The newest ``report.json`` under ``runs_dir`` (two levels down, e.g. ``demo-experiment/report/``)
    whose runs include this run; unreadable reports are skipped."""
    found: list[tuple[float, Path, ExperimentReport]] = []
    for path in [*runs_dir.glob("*/report.json"), *runs_dir.glob("*/*/report.json")]:
        try:
            report = ExperimentReport.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if folder.name in report.runs:
            found.append((path.stat().st_mtime, path, report))
    if not found:
        return None
    _, path, report = max(found, key=lambda item: item[0])
    return path, report


def collect(folder: Path, runs_dir: Path) -> ResultsData:
    """This run's retriever and LLM rows first, then the LLM rows of the other runs side by side."""
    out = ResultsData(dataset=dataset_name(folder))
    own = run_rows(folder, folder.name)
    for system in ("retriever", folder.name):
        rows = [r for r in own if r.system == system]
        if rows:
            out.columns.append(system)
            out.rows[system] = rows
    for other in list_runs(runs_dir):
        if other.folder.resolve() == folder.resolve():
            continue
        rows = [r for r in run_rows(other.folder, other.name) if r.system == other.name]
        if rows:
            out.columns.append(other.name)
            out.rows[other.name] = rows
    out.published = published_for(out.dataset)
    out.loss, out.ndcg, out.lr = curves(load_run(folder))
    report = find_report(folder, runs_dir)
    if report is not None:
        out.report_path, out.report = report
    return out


class ResultsScreen(PollingScreen):
    """Results of one run, with the other runs beside it."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self._shown: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"results — {self.folder.name}", classes="title", id="results-title")
        with TabbedContent(id="results-tabs"):
            with TabPane("Metrics", id="tab-metrics"):
                yield DataTable(id="results-table", zebra_stripes=True, cursor_type="row")
                yield Static("", classes="hint", id="results-note")
            with TabPane("Curves", id="tab-curves"), Horizontal(id="curves"):
                yield LinePlot("training loss", id="loss-plot")
                yield LinePlot("learning rate", id="lr-plot")
                yield LinePlot("validation NDCG@10", id="ndcg-plot")
            with TabPane("Experiment", id="tab-experiment"):
                yield Static("", classes="hint", id="report-verdict")
                yield DataTable(id="report-variants", zebra_stripes=True, cursor_type="row")
                yield DataTable(id="report-pairs", zebra_stripes=True, cursor_type="row")
        yield Footer()

    def refresh_data(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="results")
    def _load(self) -> None:
        data = collect(self.folder, self.runs_dir)
        self.deliver(self._show, data)

    def _show(self, data: ResultsData) -> None:
        key = (tuple(data.columns), tuple(len(v) for v in data.rows.values()), len(data.loss), len(data.ndcg),
               len(data.lr), data.report.model_dump_json() if data.report else None,
               tuple(tuple(sorted(r.metrics.items())) for rows in data.rows.values() for r in rows))
        if key == self._shown:
            return
        self._shown = key
        table = self.query_one("#results-table", DataTable)
        table.clear(columns=True)
        table.add_column("scope", key="scope")
        table.add_column("metric", key="metric")
        for column in data.columns:
            table.add_column(column[:12], key=column)
        for pub in data.published:
            table.add_column(f"[i]{pub.label}[/i]", key=pub.label)
        scopes: list[str] = []
        for rows in data.rows.values():
            scopes += [r.scope for r in rows if r.scope not in scopes]
        for scope in scopes:
            keys: list[str] = []
            for rows in data.rows.values():
                for r in rows:
                    if r.scope == scope:
                        keys += [k for k in r.metrics if k not in keys]
            ordered = sorted(keys, key=lambda k: (METRICS.index(k.split("@")[0]) if k.split("@")[0] in METRICS
                                                  else 9, int(k.split("@")[1]) if "@" in k else 0))
            for metric in ordered:
                cells = []
                for column in data.columns:
                    row = next((r for r in data.rows[column] if r.scope == scope), None)
                    value = row.metrics.get(metric) if row else None
                    cells.append("—" if value is None else f"{value:.4f}")
                for pub in data.published:
                    value = pub.metrics.get(metric) if pub.scope == scope else None
                    cells.append("" if value is None else f"[i]{value:.4f}[/i]")
                table.add_row(scope, metric, *cells)
        note = self.query_one("#results-note", Static)
        if not data.columns:
            note.update("no eval results in this run yet")
        elif data.published:
            note.update("italic: published — " + "; ".join(p.source for p in data.published))
        else:
            note.update(f"dataset {data.dataset or '?'}: no published figures on file")
        self.query_one("#loss-plot", LinePlot).set_points(data.loss)
        self.query_one("#ndcg-plot", LinePlot).set_points(data.ndcg)
        self.query_one("#lr-plot", LinePlot).set_points(data.lr)
        self._show_report(data)

    def _show_report(self, data: ResultsData) -> None:
        """The report's verdict, its metrics table (subset, mean over seeds) and its paired differences."""
        verdict = self.query_one("#report-verdict", Static)
        variants = self.query_one("#report-variants", DataTable)
        pairs = self.query_one("#report-pairs", DataTable)
        variants.clear(columns=True)
        pairs.clear(columns=True)
        report = data.report
        if report is None:
            verdict.update("no experiment report covers this run (`ulmrec experiment report RUNS --out DIR`)")
            return
        learned = "the LLM learned" if report.learned else "the LLM has not learned to rank"
        verdict.update(f"{data.report_path}: {len(report.runs)} runs, n = {report.n_candidates}; {learned} "
                       f"(next-item loss vs ln(n) = {report.chance_loss:.3f})")
        for label in ("variant", "seeds", "users", "NDCG@10", "Recall@1", "overall NDCG@10", "cold users",
                      "cold NDCG@10", "next-item loss", "steps"):
            variants.add_column(label, key=label)
        for row in report.rows:
            loss = "—" if row.last_next_item_loss is None else f"{row.last_next_item_loss:.3f}"
            cold = row.cold_subset.get("ndcg@10")
            variants.add_row(row.variant, ",".join(map(str, row.seeds)), str(row.n_users),
                             f"{row.subset.get('ndcg@10', float('nan')):.4f}",
                             f"{row.subset.get('recall@1', float('nan')):.4f}",
                             f"{row.overall.get('ndcg@10', float('nan')):.4f}", str(row.cold_users or "—"),
                             "—" if cold is None else f"{cold:.4f}", loss, str(row.steps or "—"))
        for label in ("B − A", "metric", "users", "A", "B", "B − A ", "95 % CI", "p"):
            pairs.add_column(label, key=label)
        for name, comparisons in report.comparisons.items():
            for c in comparisons:
                pairs.add_row(name, c.metric, str(c.n_users), f"{c.mean_a:.4f}", f"{c.mean_b:.4f}",
                              f"{c.difference:+.4f}", f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
                              f"{c.p_value:.3g}")
