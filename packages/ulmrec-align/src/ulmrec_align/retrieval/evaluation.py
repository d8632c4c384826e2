"""The retriever's candidates and its own full-ranking metrics per split (``candidates.jsonl``,
``metrics.json``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.base import SequenceRetriever
from ulmrec_align.retrieval.candidates import SplitResult, evaluate_split, write_candidates
from ulmrec_align.retrieval.config import RETRIEVER_SCHEMA_VERSION, CandidateConfig
from ulmrec_align.retrieval.data import eval_inputs
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.saved import (
    CANDIDATES_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    check_dataset,
    dataset_identity,
    load_retriever,
)
from ulmrec_eval.runtime.artifacts import atomic_update
from ulmrec_eval.runtime.devices import check_device
from ulmrec_eval.runtime.errors import error_text
from ulmrec_eval.runtime.io import atomic_write_json


def split_report(result: SplitResult, ks: tuple[int, ...]) -> dict[str, Any]:
    """The metrics.json entry of one split."""
    report: dict[str, Any] = {"users": len(result.inputs), "metrics": result.metrics(ks)}
    if result.top_items is not None:
        report["target_in_candidates"] = result.target_in_top()
    return report


def write_evaluation(dataset: PreparedDataset, retriever: SequenceRetriever, out_dir: Path,
                     config: CandidateConfig, *,
                     eval_batch_size: int, training: dict[str, Any] | None = None,
                     candidates: bool = True) -> dict[str, Any]:
    """Evaluate the configured splits; write ``metrics.json`` (and ``candidates.jsonl``) into ``out_dir``."""
    started = time.monotonic()
    results = [evaluate_split(retriever, eval_inputs(dataset.splits, split, max_len=retriever.config.max_len),
                              batch_size=eval_batch_size, mask_history=config.mask_history,
                              pool_size=config.pool_size if candidates else None)
               for split in config.splits]
    metrics: dict[str, Any] = {
        "schema_version": RETRIEVER_SCHEMA_VERSION, "kind": "retriever-metrics", "model": retriever.kind,
        "scope": "full", "ties": "pessimistic", "mask_history": config.mask_history,
        "pool_size": config.pool_size, "ks": list(config.metric_ks), "dataset": dataset_identity(dataset),
    }
    for result in results:
        metrics[result.inputs.split] = split_report(result, config.metric_ks)
    metrics["eval_seconds"] = round(time.monotonic() - started, 3)
    if training is not None:
        metrics["training"] = training
    out_dir.mkdir(parents=True, exist_ok=True)
    if candidates:
        write_candidates(out_dir / CANDIDATES_FILE, results, dataset, config)
    atomic_write_json(out_dir / METRICS_FILE, metrics)
    return metrics


def evaluate_retriever(dataset: PreparedDataset, model_dir: str | Path, *, out_dir: str | Path | None = None,
                       device: str = "cpu", candidates: bool = False,
                       candidate_config: CandidateConfig | None = None,
                       pool_size: int | None = None) -> dict[str, Any]:
    """Recompute metrics (and candidates) of a saved model into ``out_dir`` (default: the model's).

    ``candidate_config`` defaults to the model's; ``pool_size`` overrides its pool size.
    """
    check_device(device)
    retriever, config, saved = load_retriever(model_dir, device=device)
    candidate_config = candidate_config or config.candidates
    if pool_size is not None:
        try:
            candidate_config = CandidateConfig.model_validate(
                {**candidate_config.model_dump(), "pool_size": pool_size})
        except ValidationError as exc:
            raise RetrieverError(f"--pool-size {pool_size}: {error_text(exc.errors()[0])}") from None
    check_dataset(saved, dataset, Path(model_dir) / CONFIG_FILE)
    out = Path(out_dir) if out_dir is not None else Path(model_dir)
    training = None
    previous = out / METRICS_FILE
    if previous.is_file():
        try:
            training = json.loads(previous.read_text(encoding="utf-8")).get("training")
        except json.JSONDecodeError:
            training = None
    with atomic_update(out) as tmp:  # metrics (and candidates) replace the old ones together
        return write_evaluation(dataset, retriever, tmp, candidate_config,
                                eval_batch_size=config.train.eval_batch_size, training=training,
                                candidates=candidates)
