"""ulmrec-eval: ranking metrics for sequential recommendation (numpy + pydantic only; never imports torch).

The public API is re-exported lazily (numpy and pydantic load on first use, so ``ulmrec --help`` stays fast)::

    from ulmrec_eval import target_ranks, compute_metrics
    ranks = target_ranks(scores, targets)          # (U, N) scores, (U,) target columns -> (U,) ranks
    compute_metrics(ranks, ks=(1, 5, 10, 20))      # {"recall@1": ..., "mrr@5": ..., "ndcg@10": ...}

Scores and ranks may be numpy arrays, torch tensors (any float dtype, bf16 included) or lists;
``write_predictions`` turns another model's arrays into a predictions file for ``ulmrec eval``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # metrics
    "MISS": "ulmrec_eval.metrics",
    "DEFAULT_KS": "ulmrec_eval.metrics",
    "target_ranks": "ulmrec_eval.metrics",
    "ranks_from_lists": "ulmrec_eval.metrics",
    "ranks_from_candidates": "ulmrec_eval.metrics",
    "recall_at_k": "ulmrec_eval.metrics",
    "mrr_at_k": "ulmrec_eval.metrics",
    "ndcg_at_k": "ulmrec_eval.metrics",
    "recall_at_k_per_user": "ulmrec_eval.metrics",
    "mrr_at_k_per_user": "ulmrec_eval.metrics",
    "ndcg_at_k_per_user": "ulmrec_eval.metrics",
    "compute_metrics": "ulmrec_eval.metrics",
    "per_user_metric": "ulmrec_eval.metrics",
    # schemas
    "SCHEMA_VERSION": "ulmrec_eval.schemas",
    "RankedPrediction": "ulmrec_eval.schemas",
    "MetricReport": "ulmrec_eval.schemas",
    "BucketReport": "ulmrec_eval.schemas",
    "EvalResult": "ulmrec_eval.schemas",
    "MetricComparison": "ulmrec_eval.schemas",
    "ComparisonReport": "ulmrec_eval.schemas",
    # evaluation and comparison
    "evaluate": "ulmrec_eval.evaluation",
    "evaluate_ranks": "ulmrec_eval.evaluation",
    "load_predictions": "ulmrec_eval.evaluation",
    "prediction_ranks": "ulmrec_eval.evaluation",
    "paired_comparison": "ulmrec_eval.compare",
    "compare_predictions": "ulmrec_eval.compare",
    "compare_ranks": "ulmrec_eval.compare",
    # arrays from other models
    "write_predictions": "ulmrec_eval.predictions",
    "read_prediction_arrays": "ulmrec_eval.predictions",
}

__all__ = [
    "DEFAULT_KS",
    "MISS",
    "SCHEMA_VERSION",
    "BucketReport",
    "ComparisonReport",
    "EvalResult",
    "MetricComparison",
    "MetricReport",
    "RankedPrediction",
    "__version__",
    "compare_predictions",
    "compare_ranks",
    "compute_metrics",
    "evaluate",
    "evaluate_ranks",
    "load_predictions",
    "mrr_at_k",
    "mrr_at_k_per_user",
    "ndcg_at_k",
    "ndcg_at_k_per_user",
    "paired_comparison",
    "per_user_metric",
    "prediction_ranks",
    "ranks_from_candidates",
    "ranks_from_lists",
    "read_prediction_arrays",
    "recall_at_k",
    "recall_at_k_per_user",
    "target_ranks",
    "write_predictions",
]

if TYPE_CHECKING:
    from ulmrec_eval.compare import compare_predictions, compare_ranks, paired_comparison
    from ulmrec_eval.evaluation import evaluate, evaluate_ranks, load_predictions, prediction_ranks
    from ulmrec_eval.metrics import (
        DEFAULT_KS,
        MISS,
        compute_metrics,
        mrr_at_k,
        mrr_at_k_per_user,
        ndcg_at_k,
        ndcg_at_k_per_user,
        per_user_metric,
        ranks_from_candidates,
        ranks_from_lists,
        recall_at_k,
        recall_at_k_per_user,
        target_ranks,
    )
    from ulmrec_eval.predictions import read_prediction_arrays, write_predictions
    from ulmrec_eval.schemas import (
        SCHEMA_VERSION,
        BucketReport,
        ComparisonReport,
        EvalResult,
        MetricComparison,
        MetricReport,
        RankedPrediction,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ulmrec_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
