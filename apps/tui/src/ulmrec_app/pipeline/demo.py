"""``ulmrec demo``: run the CPU demo (ULMRec and its no-index baseline) and print one table.

The two runs are ``demo`` and ``demo-noindex`` (configs shipped in ``ulmrec_app/configs``, mirrored in the
repository's ``configs/``); the baseline reuses ``data`` and ``retrieve`` of ``demo``. The table shows the
retriever alone, the no-index baseline and ULMRec on the same test users, subset (target retrieved) and
overall, then ``ulmrec eval compare``'s paired comparisons: ULMRec against the baseline, and each LLM
against the retriever's own order of the same candidates (all in ``demo/compare.json``). A second
``ulmrec demo`` finds every stage unchanged and prints the table in seconds.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ulmrec_app.pipeline.config import RunConfig, load_config
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.layout import RunLayout, default_ranked_n
from ulmrec_app.pipeline.results import TABLE_METRICS, Row, eval_result, retriever_on_users, rows_of
from ulmrec_app.pipeline.runner import Runner
from ulmrec_eval.runtime.io import read_json_model
from ulmrec_eval.schemas import ComparisonReport

COMPARE_METRICS = TABLE_METRICS
DEMO_COMPARE = "compare.json"


class DemoComparisons(BaseModel):
    """``demo/compare.json``: every paired comparison the demo table prints, by label ("B − A")."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    comparisons: dict[str, ComparisonReport] = Field(default_factory=dict)


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


def with_seed(config: RunConfig, seed: int | None) -> RunConfig:
    """``config`` on the synthetic world of ``seed`` (runs named ``<name>-seedN``; seed 0 keeps the names)."""
    if seed is None or seed == 0:
        return config
    synthetic = {**config.data.get("synthetic", {}), "seed": seed}
    return config.model_copy(update={"name": f"{config.name}-seed{seed}",
                                      "data": {**config.data, "synthetic": synthetic}})


def run_demo(runs: Path, *, data: Path | None = None, users: int | None = None, force: bool = False,
             seed: int | None = None) -> None:
    if seed is not None and data is not None:
        raise PipelineError("--seed sets the synthetic world's seed; it does not apply with --data")
    ours, baseline = (with_seed(with_data(c, data, users), seed) for c in demo_configs())
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


def retriever_predictions(candidates: Path, predictions: Path, out: Path, *, split: str, n: int) -> Path:
    """The retriever's own order for the users of ``predictions``, cut to the ``n`` candidates the LLM saw
    (so a paired comparison ranks the same candidates); rewritten when either input changes."""
    from ulmrec_eval.runtime.io import atomic_write_jsonl, read_jsonl_models
    from ulmrec_eval.schemas import RankedPrediction

    if out.is_file() and out.stat().st_mtime >= max(candidates.stat().st_mtime, predictions.stat().st_mtime):
        return out
    users = {p.user_id for p in read_jsonl_models(predictions, RankedPrediction) if p.split in (None, split)}
    rows = []
    for p in read_jsonl_models(candidates, RankedPrediction):
        if p.split in (None, split) and p.user_id in users and p.candidates is not None and p.scores:
            rows.append(p.model_copy(update={"candidates": p.candidates[:n], "scores": p.scores[:n]}))
    atomic_write_jsonl(out, rows)
    return out


def demo_rows(ours_dir: Path, base_dir: Path) -> tuple[list[Row], dict[str, ComparisonReport]]:
    """The table's rows (retriever, no index, ULMRec) and the paired comparisons ("B − A" → report), from
    finished runs; all comparisons are also written to ``ours_dir/compare.json``."""
    ours_run, base_run = RunLayout(ours_dir), RunLayout(base_dir)
    ours = eval_result(ours_run.metrics)
    base = eval_result(base_run.metrics)
    if ours is None or base is None:
        raise PipelineError(f"no eval results in {ours_dir} and {base_dir}; run `ulmrec demo` first")
    predictions = ours_run.predictions
    split = "test"
    n = next((r.retrieved_n for r in ours.reports if r.retrieved_n), None) or default_ranked_n()
    retriever = retriever_on_users(ours_run.candidates, predictions, split=split, retrieved_n=n)
    rows = rows_of("LRURec alone", retriever) + rows_of("no index", base) + rows_of("ULMRec", ours)
    order = retriever_predictions(ours_run.candidates, predictions,
                                  ours_run.compare / "retriever-order.jsonl", split=split, n=n)
    base_predictions = base_run.predictions
    pairs = {"ULMRec − no index": (base_predictions, predictions),
             "ULMRec − LRURec": (order, predictions),
             "no index − LRURec": (order, base_predictions)}
    reports = {label: _compare(a, b, ours_run.compare / f"{i}.json", split)
               for i, (label, (a, b)) in enumerate(pairs.items())}
    from ulmrec_eval.runtime.io import atomic_write_text

    atomic_write_text(ours_dir / DEMO_COMPARE,
                      DemoComparisons(comparisons=reports).model_dump_json(indent=2) + "\n")
    return rows, reports


def print_table(ours_dir: Path, base_dir: Path) -> None:
    """One table: each system subset and overall, then ULMRec − no index (paired) and its p-value."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    rows, reports = demo_rows(ours_dir, base_dir)
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
    for label, report in reports.items():
        by_metric = {c.metric: c for c in report.comparisons}
        table.add_section()
        table.add_row(label, *[f"{by_metric[m].difference:+.4f}" if m in by_metric else ""
                               for m in TABLE_METRICS])
        table.add_row("  p (paired)", *[f"{by_metric[m].p_value:.3g}" if m in by_metric else ""
                                        for m in TABLE_METRICS])
    console = Console()
    console.print(table)
    console.print("subset: users whose target the retriever put in its top-N; overall: all test users (a "
                  "target outside the top-N is a miss). N@K = NDCG@K, R@K = Recall@K (= HitRate@K). "
                  "Differences are paired over the same users (`ulmrec eval compare`, all users); − LRURec: "
                  "against the retriever's own order of the candidates the LLM ranked.", highlight=False)
    for label, report in reports.items():
        c = next((c for c in report.comparisons if c.metric == "ndcg@10"), None)
        if c is not None:
            console.print(f"{label}, NDCG@10: Δ {c.difference:+.4f}, {c.confidence:.0%} CI "
                          f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}], p = {c.p_value:.3g}, {c.n_users} users",
                          highlight=False)
    for system, folder in (("ULMRec", ours_dir), ("no index", base_dir)):
        weight = fusion_weight(RunLayout(folder).predictions)
        console.print(f"{system}: " + ("the LLM alone" if weight is None else
                                       f"z(LLM) + W·z(LRURec), W = {weight:g} chosen on validation users"),
                      highlight=False)
    console.print(f"all comparisons in {ours_dir / DEMO_COMPARE}", highlight=False)


def fusion_weight(predictions: Path) -> float | None:
    """The retriever's weight ``W`` the rank stage fused with (``align rank --fuse-retriever``), or None."""
    from ulmrec_align.ranking.ranker import RankRow
    from ulmrec_eval.runtime.io import read_jsonl_models

    weights = {row.fusion_weight for row in read_jsonl_models(predictions, RankRow)}
    if len(weights) > 1:
        raise PipelineError(f"{predictions}: rows fused with different weights {sorted(map(str, weights))}")
    return next(iter(weights), None)
