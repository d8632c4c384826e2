"""From predictions to labelled reports: full / subset / overall scopes and history-length buckets.

The LlamaRec convention: a retriever proposes the top-``N`` items, a re-ranker orders them. Metrics are
reported (1) on the **subset** of users whose target is in the retrieved top-``N`` and (2) **overall**, every
other user counted as a miss — which is only meaningful for ``K ≤ N`` (a target outside the top-``N`` might
have ranked ``N + 1``), so larger ``K`` are omitted from the overall scope and listed in ``omitted_ks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ulmrec_eval.arrays import as_numpy
from ulmrec_eval.metrics import (
    DEFAULT_KS,
    MISS,
    check_ranks,
    compute_metrics,
    normalise_ks,
    ranks_from_candidates,
    ranks_from_lists,
)
from ulmrec_eval.predictions import PredictionArrays, read_prediction_arrays
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import iter_jsonl_models
from ulmrec_eval.schemas import BucketReport, EvalResult, ItemId, MetricReport, RankedPrediction, Scope

#: Default history-length bucket edges: ``<5``, ``5-9``, ``10-19``, ``20-49``, ``50+``.
DEFAULT_BUCKET_EDGES: tuple[int, ...] = (5, 10, 20, 50)

__all__ = [
    "DEFAULT_BUCKET_EDGES",
    "as_predictions",
    "evaluate",
    "evaluate_ranks",
    "load_predictions",
    "prediction_ranks",
    "read_any_predictions",
]


def load_predictions(path: str | Path, *, split: str | None = None) -> list[RankedPrediction]:
    """Read a predictions JSON-lines file; a malformed line or a repeated ``user_id`` names file and line.

    ``split`` keeps only the records of that split (e.g. ``"test"``). A file whose records belong to several
    splits must be read with ``split`` given, so that validation and test are never mixed.
    """
    predictions: list[RankedPrediction] = []
    seen: dict[ItemId, int] = {}
    splits: dict[str | None, int] = {}
    for number, prediction in iter_jsonl_models(path, RankedPrediction):
        splits.setdefault(prediction.split, number)
        if split is None and len(splits) > 1:
            first, other = list(splits)[:2]
            raise InputError(f"split {other!r} here but {first!r} on line {splits[first]}: the file holds "
                             f"several splits; choose one (--split)", path=path, line=number)
        if split is not None and prediction.split != split:
            continue
        if prediction.user_id in seen:
            raise InputError(f"user_id {prediction.user_id!r} repeats line {seen[prediction.user_id]}",
                             path=path, line=number)
        seen[prediction.user_id] = number
        predictions.append(prediction)
    if not predictions:
        found = ", ".join(sorted(str(s) for s in splits))
        raise InputError("no predictions (the file is empty)" if split is None or not splits
                         else f"no predictions of split {split!r} (the file has: {found})", path=path)
    return predictions


def prediction_ranks(predictions: Sequence[RankedPrediction]) -> npt.NDArray[np.int64]:
    """The target's 1-based rank per prediction (0 = miss): from scores when given, else from ``ranked``."""
    ranks = np.zeros(len(predictions), dtype=np.int64)
    scored = [i for i, p in enumerate(predictions) if p.uses_scores]
    listed = [i for i, p in enumerate(predictions) if not p.uses_scores]
    if scored:
        ranks[scored] = ranks_from_candidates(
            [predictions[i].candidates or [] for i in scored],
            [predictions[i].scores or [] for i in scored],
            [predictions[i].target for i in scored])
    if listed:
        ranks[listed] = ranks_from_lists([predictions[i].ranked or [] for i in listed],
                                         [predictions[i].target for i in listed])
    return ranks


def _bucket_label(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    if low == 0:
        return f"<{high + 1}"
    return f"{low}-{high}" if low != high else str(low)


def _buckets(ranks: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64], ks: Sequence[int],
             edges: Sequence[int]) -> list[BucketReport]:
    bounds = sorted({int(e) for e in edges if int(e) > 0})
    lows = [0, *bounds]
    out: list[BucketReport] = []
    for i, low in enumerate(lows):
        high = lows[i + 1] - 1 if i + 1 < len(lows) else None
        mask = (lengths >= low) if high is None else ((lengths >= low) & (lengths <= high))
        n = int(np.count_nonzero(mask))
        out.append(BucketReport(label=_bucket_label(low, high), min_length=low, max_length=high, n_users=n,
                                metrics=compute_metrics(ranks[mask], ks) if n else {}))
    return out


def evaluate_ranks(ranks: npt.ArrayLike, *, ks: Iterable[int] | int = DEFAULT_KS,
                   retrieved_n: int | None = None,
                   history_lengths: npt.ArrayLike | None = None,
                   bucket_edges: Sequence[int] = DEFAULT_BUCKET_EDGES,
                   source: str | None = None) -> list[MetricReport]:
    """Reports of precomputed ranks (0 = miss): ``[full]`` or, with ``retrieved_n``, ``[subset, overall]``.

    ``ranks`` are whole numbers (numpy, torch or a list; 2.5 is refused, not truncated); ``ks`` cut-offs or
    one K. ``history_lengths`` (``-1`` = unknown) adds buckets by history length to each report.

    >>> full, = evaluate_ranks([1, 3, 0, 25], ks=(1, 10))
    >>> full.scope, full.metrics["recall@10"]
    ('full', 0.5)
    >>> subset, overall = evaluate_ranks([1, 3, 0, 25], ks=(1, 10, 30), retrieved_n=20)
    >>> subset.n_users, subset.metrics["recall@10"], overall.metrics["recall@10"], overall.omitted_ks
    (2, 1.0, 0.5, [30])
    """
    shape = np.shape(as_numpy(ranks, what="ranks"))
    if len(shape) != 1 or shape[0] == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {shape}")
    r = check_ranks(ranks)
    kk = list(normalise_ks(ks))
    lengths = None if history_lengths is None else np.asarray(as_numpy(history_lengths), dtype=np.int64)
    if lengths is not None and lengths.shape != r.shape:
        raise ValueError(f"history_lengths must have shape {r.shape}, got {lengths.shape}")
    known = None if lengths is None else lengths >= 0
    total = int(r.size)

    def report(scope: Scope, mask: npt.NDArray[np.bool_], scope_ranks: npt.NDArray[np.int64],
               scope_ks: list[int], omitted: list[int], subset_size: int | None) -> MetricReport:
        sel = scope_ranks[mask]
        metrics = compute_metrics(sel, scope_ks) if sel.size and scope_ks else {}
        buckets: list[BucketReport] = []
        if lengths is not None and known is not None and scope_ks and bool(known[mask].any()):
            keep = mask & known
            buckets = _buckets(scope_ranks[keep], lengths[keep], scope_ks, bucket_edges)
        return MetricReport(scope=scope, metrics=metrics, ks=scope_ks, n_users=int(sel.size),
                            total_users=total, subset_size=subset_size, retrieved_n=retrieved_n,
                            omitted_ks=omitted, buckets=buckets, source=source)

    everyone = np.ones(total, dtype=bool)
    if retrieved_n is None:
        return [report("full", everyone, r, kk, [], None)]
    if retrieved_n < 1:
        raise ValueError(f"retrieved_n must be >= 1, got {retrieved_n}")
    inside = (r >= 1) & (r <= retrieved_n)
    n_inside = int(np.count_nonzero(inside))
    capped = np.where(inside, r, MISS)
    overall_ks = [k for k in kk if k <= retrieved_n]
    return [
        report("subset", inside, r, kk, [], n_inside),
        report("overall", everyone, capped, overall_ks, [k for k in kk if k > retrieved_n], n_inside),
    ]


PredictionsInput = Sequence[RankedPrediction | Mapping[str, Any]] | str | Path


def as_predictions(records: object, *, what: str = "predictions") -> list[RankedPrediction]:
    """A list of :class:`RankedPrediction` from predictions or their dicts; anything else: ``ValueError``."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise ValueError(f"{what} must be a predictions file path or a sequence of RankedPrediction / dicts, "
                         f"got {type(records).__name__}")
    out: list[RankedPrediction] = []
    for i, record in enumerate(records):
        if isinstance(record, RankedPrediction):
            out.append(record)
        elif isinstance(record, Mapping):
            out.append(RankedPrediction.model_validate(dict(record)))
        else:
            raise ValueError(f"{what}[{i}] must be a RankedPrediction or a dict, got {type(record).__name__}")
    return out


def read_any_predictions(predictions: object, *, split: str | None = None,
                         what: str = "predictions") -> tuple[str | None, PredictionArrays]:
    """``(file or None, arrays)`` of a ``.jsonl`` / ``.npz`` file or of in-memory predictions (or dicts)."""
    if isinstance(predictions, (str, Path)):
        path = Path(predictions)
        if path.suffix == ".npz":
            arrays = read_prediction_arrays(path)
            if split is not None and arrays.split is not None and arrays.split != split:
                raise InputError(f"holds split {arrays.split!r}, not {split!r}", path=path)
            return str(path), arrays
        preds: Sequence[RankedPrediction] = load_predictions(path, split=split)
        name: str | None = str(path)
    else:
        preds = [p for p in as_predictions(predictions, what=what) if split is None or p.split == split]
        name = None
    if not preds:
        raise ValueError(f"no {what}" if split is None else f"no {what} of split {split!r}")
    lengths = None
    if any(p.history_length is not None for p in preds):
        lengths = np.array([-1 if p.history_length is None else p.history_length for p in preds],
                           dtype=np.int64)
    sources = {p.source for p in preds}
    pools = {p.retrieved_n for p in preds}
    if len(pools) > 1:
        known = sorted(n for n in pools if n is not None)
        raise InputError(f"rows disagree on retrieved_n ({', '.join(map(str, known))}"
                         f"{' and unset' if None in pools else ''}): the subset needs one N",
                         path=name)
    ids = np.empty(len(preds), dtype=object)
    ids[:] = [p.user_id for p in preds]
    targets = np.empty(len(preds), dtype=object)
    targets[:] = [p.target for p in preds]
    return name, PredictionArrays(user_ids=ids, targets=targets, ranks=prediction_ranks(preds),
                                  history_lengths=lengths,
                                  source=next(iter(sources)) if len(sources) == 1 else None,
                                  retrieved_n=next(iter(pools)))


def evaluate(predictions: PredictionsInput, *, ks: Iterable[int] | int = DEFAULT_KS,
             retrieved_n: int | None = None,
             bucket_edges: Sequence[int] = DEFAULT_BUCKET_EDGES, split: str | None = None) -> EvalResult:
    r"""Evaluate predictions: a ``.jsonl`` or ``.npz`` file, or :class:`RankedPrediction`\ s or their dicts.

    See :func:`evaluate_ranks` for the scopes; ``split`` selects one split's records (see
    :func:`load_predictions`). ``retrieved_n`` defaults to the N the rows carry (a re-ranker's output says
    which top-N it re-ranked), so such a file is reported as subset and overall without being told.

    >>> evaluate([{"user_id": 1, "target": 7, "ranked": [3, 7]}], ks=2).reports[0].metrics["mrr@2"]
    0.5
    """
    path, arrays = read_any_predictions(predictions, split=split)
    reports = evaluate_ranks(arrays.ranks, ks=ks,
                             retrieved_n=arrays.retrieved_n if retrieved_n is None else retrieved_n,
                             history_lengths=arrays.history_lengths, bucket_edges=bucket_edges,
                             source=arrays.source)
    return EvalResult(predictions=path, reports=reports)
