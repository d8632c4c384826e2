"""Metric tables of finished runs (used by ``ulmrec demo`` and the TUI's Results screen).

A run's ``eval`` stage holds ``metrics.json`` (its LLM ranking) and ``retriever.json`` (the retriever alone),
both :class:`~ulmrec_eval.schemas.EvalResult`. For a like-for-like row, :func:`retriever_on_users` re-scores
the retriever's candidates on exactly the users the LLM ranked (``ulmrec align rank --limit`` ranks a subset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ulmrec_app.pipeline.layout import RunLayout, default_ranked_n
from ulmrec_eval.runtime.io import read_json_model, read_jsonl_models
from ulmrec_eval.schemas import EvalResult, RankedPrediction

TABLE_METRICS = ("ndcg@5", "ndcg@10", "ndcg@20", "recall@5", "recall@10", "recall@20")


@dataclass(frozen=True)
class Row:
    """One system's metrics in one scope."""

    system: str
    scope: str
    n_users: int
    metrics: dict[str, float]


def eval_result(path: Path) -> EvalResult | None:
    """The :class:`EvalResult` at ``path``, None when it is not there."""
    return read_json_model(path, EvalResult) if path.is_file() else None


def rows_of(system: str, result: EvalResult) -> list[Row]:
    return [Row(system=system, scope=r.scope, n_users=r.n_users, metrics=dict(r.metrics))
            for r in result.reports]


def retriever_on_users(candidates: Path, predictions: Path, *, split: str, retrieved_n: int,
                       ks: tuple[int, ...] = (1, 5, 10, 20)) -> EvalResult:
    """The retriever's metrics over the users present in ``predictions`` (one split)."""
    from ulmrec_eval.evaluation import evaluate

    users = {p.user_id for p in read_jsonl_models(predictions, RankedPrediction) if p.split in (None, split)}
    rows = [p for p in read_jsonl_models(candidates, RankedPrediction)
            if p.split in (None, split) and p.user_id in users]
    return evaluate(rows, ks=ks, retrieved_n=retrieved_n)


def run_rows(run_dir: Path, label: str) -> list[Row]:
    """Rows of one run: its LLM ranking (``label``) and, as ``retriever``, the retriever alone — on the same
    users as the LLM when the run ranked a subset (``align rank --limit``), else from ``retriever.json``."""
    rows: list[Row] = []
    layout = RunLayout(run_dir)
    ours = eval_result(layout.metrics)
    retriever = eval_result(layout.retriever_eval)
    predictions, candidates = layout.predictions, layout.candidates
    if ours is not None and retriever is not None and predictions.is_file() and candidates.is_file() \
            and ours.reports[0].total_users != retriever.reports[0].total_users:
        n = next((r.retrieved_n for r in ours.reports if r.retrieved_n), None) or default_ranked_n()
        retriever = retriever_on_users(candidates, predictions, split="test", retrieved_n=n)
    if retriever is not None:
        rows += rows_of("retriever", retriever)
    if ours is not None:
        rows += rows_of(label, ours)
    return rows
