"""Paired comparison of two systems over the same users: difference, bootstrap interval and p-value.

For per-user values ``a_u`` and ``b_u`` (e.g. NDCG@10 of each user under systems A and B), with
``d_u = b_u − a_u`` and ``D = (1/U) Σ_u d_u``:

* **interval** — percentile bootstrap: resample users with replacement ``R`` times, take the
  ``(1−c)/2`` and ``(1+c)/2`` quantiles of the resampled ``D``;
* **p-value** — paired randomisation (sign-flip) test of "A and B are exchangeable": flip the sign of each
  ``d_u`` at random ``R`` times, ``p = (1 + #{|D*| ≥ |D|}) / (1 + R)`` (two-sided, never 0).

Users with ``d_u = 0`` change neither test statistic's numerator, so both are drawn over the non-zero
differences only (exactly, not approximately): cost ``O(R × #non-zero)``, not ``O(R × U)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ulmrec_eval.arrays import as_numpy
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.schemas import ComparisonReport, MetricComparison, RankedPrediction

#: Default number of bootstrap resamples and of randomisation sign flips.
DEFAULT_RESAMPLES = 10_000

#: At most this many random draws are held in memory at once.
_CHUNK_CELLS = 1 << 22

__all__ = [
    "DEFAULT_RESAMPLES",
    "bootstrap_interval",
    "bootstrap_means",
    "compare_predictions",
    "compare_ranks",
    "paired_comparison",
    "randomisation_p_value",
]


def _diffs(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = _values(a, "a")
    y = _values(b, "b")
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired values must be 1-D and of equal length, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("no users to compare")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired values must be finite")
    return y - x


def _values(v: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    try:
        return np.asarray(as_numpy(v, what=what), dtype=np.float64)
    except (TypeError, ValueError):
        message = f"{what} must be numbers (a 1-D array, tensor or list), got {type(v).__name__}"
        raise ValueError(message) from None


def _check(n_resamples: int, confidence: float | None = None) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def bootstrap_means(diffs: npt.ArrayLike, *, n_resamples: int = DEFAULT_RESAMPLES,
                    rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """``R`` bootstrap replicates of the mean of ``diffs`` (users resampled with replacement).

    A resample of ``U`` users contains ``M ~ Binomial(U, m/U)`` draws from the ``m`` non-zero differences,
    each uniform among them; the zeros add nothing to the sum, so only those ``M`` draws are made.
    """
    d = np.asarray(diffs, dtype=np.float64)
    _check(n_resamples)
    n = d.size
    nonzero = d[d != 0.0]
    m = nonzero.size
    out = np.zeros(n_resamples, dtype=np.float64)
    if m == 0:
        return out
    counts = rng.binomial(n, m / n, size=n_resamples)                     # (R,) draws that hit non-zeros
    width = int(counts.max()) if n_resamples else 0
    rows = max(1, _CHUNK_CELLS // max(width, 1))
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, m, size=(stop - start, width))             # (B, width)
        vals = nonzero[idx]
        vals[np.arange(width)[None, :] >= counts[start:stop, None]] = 0.0
        out[start:stop] = vals.sum(axis=1) / n
    return out


def bootstrap_interval(a: npt.ArrayLike, b: npt.ArrayLike, *, n_resamples: int = DEFAULT_RESAMPLES,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(b − a)`` over paired users.

    >>> lo, hi = bootstrap_interval([0, 0, 1, 0] * 50, [1, 0, 1, 1] * 50, n_resamples=2000)
    >>> bool(0.35 < lo < 0.5 < hi < 0.65)
    True
    """
    d = _diffs(a, b)
    _check(n_resamples, confidence)
    return _interval(d, n_resamples=n_resamples, confidence=confidence, seed=seed)


def _interval(d: npt.NDArray[np.float64], *, n_resamples: int, confidence: float,
              seed: int) -> tuple[float, float]:
    means = bootstrap_means(d, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def randomisation_p_value(a: npt.ArrayLike, b: npt.ArrayLike, *, n_resamples: int = DEFAULT_RESAMPLES,
                          seed: int = 0) -> float:
    """Two-sided paired sign-flip test of ``mean(b − a) = 0``: ``p = (1 + #{|D*| ≥ |D|}) / (1 + R)``.

    >>> randomisation_p_value([0.5, 0.2, 0.1], [0.5, 0.2, 0.1])
    1.0
    >>> randomisation_p_value([0] * 40, [1] * 40, n_resamples=999)
    0.001
    """
    d = _diffs(a, b)
    _check(n_resamples)
    return _p_value(d, n_resamples=n_resamples, seed=seed)


def _p_value(d: npt.NDArray[np.float64], *, n_resamples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    nonzero = d[d != 0.0]
    m = nonzero.size
    if m == 0:
        return 1.0
    observed = abs(nonzero.sum())
    # compare sums (not means) with a relative tolerance so that exact ties are counted despite rounding
    threshold = observed * (1.0 - 1e-12)
    extreme = 0
    rows = max(1, _CHUNK_CELLS // m)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        signs = rng.integers(0, 2, size=(stop - start, m), dtype=np.int8) * 2 - 1
        flipped = np.abs(signs @ nonzero)
        extreme += int(np.count_nonzero(flipped >= threshold))
    return (1 + extreme) / (1 + n_resamples)


def paired_comparison(a: npt.ArrayLike, b: npt.ArrayLike, *, metric: str = "metric",
                      n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
                      seed: int = 0) -> MetricComparison:
    """Compare per-user values of system B against baseline A (same users, same order).

    >>> c = paired_comparison([0, 0, 1, 0] * 50, [1, 0, 1, 1] * 50, metric="recall@10", n_resamples=999)
    >>> c.difference, c.wins, c.losses, c.ties, c.p_value
    (0.5, 100, 0, 100, 0.001)
    """
    d = _diffs(a, b)
    _check(n_resamples, confidence)
    x = _values(a, "a")
    y = _values(b, "b")
    mean_a, mean_b = float(x.mean()), float(y.mean())
    lo, hi = _interval(d, n_resamples=n_resamples, confidence=confidence, seed=seed)
    p = _p_value(d, n_resamples=n_resamples, seed=seed + 1)
    diff = float(d.mean())
    return MetricComparison(
        metric=metric, n_users=int(d.size), mean_a=mean_a, mean_b=mean_b, difference=diff,
        relative=(diff / mean_a) if mean_a != 0.0 else None, ci_low=lo, ci_high=hi, confidence=confidence,
        p_value=p, n_resamples=n_resamples, seed=seed, wins=int(np.count_nonzero(d > 0)),
        losses=int(np.count_nonzero(d < 0)), ties=int(np.count_nonzero(d == 0)))


def compare_ranks(a: npt.ArrayLike, b: npt.ArrayLike, *, metrics: Sequence[str] | str = ("ndcg@10",),
                  n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = 0,
                  name_a: str = "A", name_b: str = "B") -> ComparisonReport:
    """Compare target ranks ``(U,)`` of systems A and B over the same users, in the same order (0 = miss).

    >>> report = compare_ranks([1, 3, 0, 2] * 50, [1, 1, 2, 2] * 50, metrics="recall@1", n_resamples=999)
    >>> c = report.comparisons[0]
    >>> c.mean_a, c.mean_b, c.wins, c.losses
    (0.25, 0.5, 50, 0)
    """
    from ulmrec_eval.metrics import check_ranks, metric_key, parse_metric_key, per_user_metric

    ranks_a, ranks_b = check_ranks(a), check_ranks(b)
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(f"a and b must rank the same users: got {ranks_a.shape[0]} and {ranks_b.shape[0]} "
                         "ranks")
    keys = [metrics] if isinstance(metrics, str) else list(metrics)
    if not keys:
        raise ValueError("give at least one metric, e.g. 'ndcg@10'")
    comparisons: list[MetricComparison] = []
    for key in keys:
        canonical = metric_key(*parse_metric_key(key))
        comparisons.append(paired_comparison(per_user_metric(ranks_a, canonical),
                                             per_user_metric(ranks_b, canonical), metric=canonical,
                                             n_resamples=n_resamples, confidence=confidence, seed=seed))
    return ComparisonReport(a=name_a, b=name_b, comparisons=comparisons)


PredictionsInput = str | Path | Sequence[RankedPrediction | Mapping[str, Any]]


def compare_predictions(a: PredictionsInput, b: PredictionsInput, *,
                        metrics: Sequence[str] | str = ("ndcg@10",), n_resamples: int = DEFAULT_RESAMPLES,
                        confidence: float = 0.95, seed: int = 0,
                        split: str | None = None) -> ComparisonReport:
    """Pair two prediction sets by ``user_id`` and compare them on each metric (``difference = B − A``).

    Each side is a ``.jsonl`` or ``.npz`` predictions file, or a sequence of :class:`RankedPrediction` or
    dicts.
    ``split`` keeps only the records of that split (e.g. ``"test"``) on both sides.

    Both must cover exactly the same users; a target missing from a user's list counts as a miss (0).
    """
    from ulmrec_eval.evaluation import read_any_predictions

    def load(obj: PredictionsInput, side: str) -> tuple[str, list[Any], list[Any], npt.NDArray[np.int64]]:
        path, arrays = read_any_predictions(obj, split=split, what=f"predictions {side}")
        name = path or arrays.source or "predictions"
        return name, arrays.user_ids.tolist(), arrays.targets.tolist(), arrays.ranks

    name_a, ids_a, targets_a, ranks_a = load(a, "A")
    name_b, ids_b, targets_b, ranks_b = load(b, "B")
    index_b = {u: i for i, u in enumerate(ids_b)}
    if len(index_b) != len(ids_b):
        raise InputError("user_id repeats in B's predictions", path=name_b)
    if len(set(ids_a)) != len(ids_a):
        raise InputError("user_id repeats in A's predictions", path=name_a)
    only_a = [u for u in ids_a if u not in index_b]
    only_b = set(index_b) - set(ids_a)
    if only_a or only_b:
        example = (only_a or sorted(only_b, key=str))[0]
        raise InputError(f"the two prediction sets cover different users ({len(only_a)} only in A, "
                         f"{len(only_b)} only in B, e.g. user_id {example!r}): a paired comparison needs the "
                         f"same users; A = {name_a}, B = {name_b}")
    order = np.fromiter((index_b[u] for u in ids_a), dtype=np.int64, count=len(ids_a))
    for u, ta, i in zip(ids_a, targets_a, order.tolist(), strict=True):
        if ta != targets_b[i]:
            raise InputError(f"user_id {u!r} has target {ta!r} in A but {targets_b[i]!r} in B: "
                             f"the systems were not evaluated on the same split", path=name_b)
    return compare_ranks(ranks_a, ranks_b[order], metrics=metrics, n_resamples=n_resamples,
                         confidence=confidence, seed=seed, name_a=name_a, name_b=name_b)
