"""``ulmrec demo``: run the CPU demo (ULMRec and its no-index baseline) and print one table.

The two runs are ``demo`` and ``demo-noindex`` (configs shipped in ``ulmrec_app/configs``, mirrored in the
repository's ``configs/``); the baseline reuses ``data`` and ``retrieve`` of ``demo``. The table shows the
retriever alone, the no-index baseline and ULMRec on the same test users, subset (target retrieved) and
overall, then ``ulmrec eval compare``'s paired comparison of ULMRec against the baseline. A second
``ulmrec demo`` finds every stage unchanged and prints the table in seconds.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ulmrec_app.pipeline.config import RunConfig, load_config
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.results import TABLE_METRICS, Row, eval_result, retriever_on_users, rows_of
from ulmrec_app.pipeline.runner import Runner
from ulmrec_eval.io import read_json_model
from ulmrec_eval.schemas import ComparisonReport

COMPARE_METRICS = TABLE_METRICS


def demo_configs() -> tuple[RunConfig, RunConfig]:
    """The packaged ``demo`` and ``demo-noindex`` configs."""
    folder = resources.files("ulmrec_app") / "configs"
    with resources.as_file(folder) as path:
        return load_config(Path(path) / "demo.toml"), load_config(Path(path) / "demo-noindex.toml")


def with_data(config: RunConfig, data: Path | None, users: int | None) -> RunConfig:
    """``config`` on real data (``--data``: RecBole folder or raw Amazon files) and/or another user count.

    With ``--data``, ``--users N`` caps every stage: ``ulmrec data prepare --max-users N`` keeps a seeded
    subset of N users, and alignment and ranking take them all.
    """
    update: dict[str, Any] = {}
    if data is not None:
        if not data.exists():
            raise PipelineError(f"--data {data}: no such file or folder")
        source = "recbole" if (data.is_file() and data.suffix == ".inter") or any(data.glob("*.inter")) \
            else "amazon"
        prepare = {**config.data.get("prepare", {}), "source": source, "path": str(data.resolve())}
        if users is not None:
            update["align"] = {**config.align, "max_users": users}
            update["rank"] = {**config.rank, "limit": users}
            prepare["max_users"] = users
        update["data"] = {"prepare": prepare}
    elif users is not None:
        update["data"] = {**config.data, "synthetic": {**config.data.get("synthetic", {}), "users": users}}
    return config.model_copy(update=update)


def run_demo(runs: Path, *, data: Path | None = None, users: int | None = None, force: bool = False) -> None:
    ours, baseline = (with_data(c, data, users) for c in demo_configs())
    Runner(ours, runs).run(force=force)
    Runner(baseline, runs).run()   # reuses data and retrieve of the first run, reruns what changed
    print_table(runs / ours.name, runs / baseline.name)


def _compare(a: Path, b: Path, out: Path, split: str) -> ComparisonReport:
    """``ulmrec eval compare A B`` (B − A), cached in ``out`` until either predictions file changes."""
    if not out.is_file() or out.stat().st_mtime < max(a.stat().st_mtime, b.stat().st_mtime):
        argv = [sys.executable, "-m", "ulmrec_app.main", "eval", "compare", str(a), str(b), "--split", split,
                "--metric", ",".join(COMPARE_METRICS), "--json", "--out", str(out)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PipelineError(f"ulmrec eval compare failed: {done.stderr.strip().splitlines()[-1:]}")
    return read_json_model(out, ComparisonReport)


def demo_rows(ours_dir: Path, base_dir: Path) -> tuple[list[Row], ComparisonReport | None]:
    """The table's rows (retriever, no index, ULMRec) and the paired comparison, from finished runs."""
    ours = eval_result(ours_dir / "eval" / "metrics.json")
    base = eval_result(base_dir / "eval" / "metrics.json")
    if ours is None or base is None:
        raise PipelineError(f"no eval results in {ours_dir} and {base_dir}; run `ulmrec demo` first")
    predictions = ours_dir / "rank" / "predictions.jsonl"
    split = "test"
    n = next((r.retrieved_n for r in ours.reports if r.retrieved_n), 20) or 20
    retriever = retriever_on_users(ours_dir / "retrieve" / "retriever" / "candidates.jsonl", predictions,
                                   split=split, retrieved_n=n)
    rows = rows_of("LRURec alone", retriever) + rows_of("no index", base) + rows_of("ULMRec", ours)
    report = _compare(base_dir / "rank" / "predictions.jsonl", predictions, ours_dir / "compare.json", split)
    return rows, report


def print_table(ours_dir: Path, base_dir: Path) -> None:
    """One table: each system subset and overall, then ULMRec − no index (paired) and its p-value."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    rows, report = demo_rows(ours_dir, base_dir)
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
    table.add_column("test users", no_wrap=True)
    for metric in TABLE_METRICS:
        table.add_column(metric.replace("recall", "R").replace("ndcg", "N"), justify="right", no_wrap=True)
    for scope in ("subset", "overall"):
        chosen = [r for r in rows if r.scope == scope]
        counts = "/".join(str(n) for n in dict.fromkeys(r.n_users for r in chosen))
        table.add_row(f"[b]{scope} ({counts})[/b]", *[""] * len(TABLE_METRICS))
        for row in chosen:
            table.add_row(f"  {row.system}",
                          *[f"{row.metrics[m]:.4f}" if m in row.metrics else "—" for m in TABLE_METRICS])
    by_metric = {c.metric: c for c in report.comparisons} if report is not None else {}
    if by_metric:
        table.add_section()
        table.add_row("ULMRec − no index",
                      *[f"{by_metric[m].difference:+.4f}" if m in by_metric else "" for m in TABLE_METRICS])
        table.add_row("  p (paired)", *[f"{by_metric[m].p_value:.3g}" if m in by_metric else ""
                                        for m in TABLE_METRICS])
    console = Console()
    console.print(table)
    console.print("subset: users whose target the retriever put in its top-N; overall: all test users (a "
                  "target outside the top-N is a miss). N@K = NDCG@K, R@K = Recall@K (= HitRate@K). "
                  "ULMRec − no index: paired over the same users (`ulmrec eval compare`).", highlight=False)
    if report is not None and "ndcg@10" in by_metric:
        c = by_metric["ndcg@10"]
        console.print(f"NDCG@10: Δ {c.difference:+.4f}, {c.confidence:.0%} CI [{c.ci_low:+.4f}, "
                      f"{c.ci_high:+.4f}], p = {c.p_value:.3g}, {c.n_users} users, {c.n_resamples:,} "
                      f"resamples; all figures in {ours_dir / 'compare.json'}", highlight=False)
