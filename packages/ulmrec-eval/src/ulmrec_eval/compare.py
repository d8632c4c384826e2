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

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ulmrec_eval.errors import InputError
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
    "paired_comparison",
    "randomisation_p_value",
]


def _diffs(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired values must be 1-D and of equal length, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("no users to compare")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired values must be finite")
    return y - x


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
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mean_a, mean_b = float(x.mean()), float(y.mean())
    lo, hi = _interval(d, n_resamples=n_resamples, confidence=confidence, seed=seed)
    p = _p_value(d, n_resamples=n_resamples, seed=seed + 1)
    diff = float(d.mean())
    return MetricComparison(
        metric=metric, n_users=int(d.size), mean_a=mean_a, mean_b=mean_b, difference=diff,
        relative=(diff / mean_a) if mean_a != 0.0 else None, ci_low=lo, ci_high=hi, confidence=confidence,
        p_value=p, n_resamples=n_resamples, seed=seed, wins=int(np.count_nonzero(d > 0)),
        losses=int(np.count_nonzero(d < 0)), ties=int(np.count_nonzero(d == 0)))


def compare_predictions(a: str | Path | Sequence[RankedPrediction],
                        b: str | Path | Sequence[RankedPrediction], *,
                        metrics: Sequence[str] = ("ndcg@10",), n_resamples: int = DEFAULT_RESAMPLES,
                        confidence: float = 0.95, seed: int = 0,
                        split: str | None = None) -> ComparisonReport:
    """Pair two prediction sets by ``user_id`` and compare them on each metric (``difference = B − A``).

    ``split`` keeps only the records of that split (e.g. ``"test"``) on both sides.

    Both must cover exactly the same users; a target missing from a user's list counts as a miss (0).
    """
    from ulmrec_eval.evaluate import load_predictions, prediction_ranks
    from ulmrec_eval.metrics import metric_key, parse_metric_key, per_user_metric

    def load(obj: str | Path | Sequence[RankedPrediction]) -> tuple[str, Sequence[RankedPrediction]]:
        if isinstance(obj, (str, Path)):
            return str(obj), load_predictions(obj, split=split)
        obj = [p for p in obj if split is None or p.split == split]
        sources = {p.source for p in obj}
        return (next(iter(sources)) or "predictions") if len(sources) == 1 else "predictions", obj

    name_a, preds_a = load(a)
    name_b, preds_b = load(b)
    index_b = {p.user_id: i for i, p in enumerate(preds_b)}
    if len(index_b) != len(preds_b):
        raise InputError("user_id repeats in B's predictions", path=name_b)
    ids_a = [p.user_id for p in preds_a]
    if len(set(ids_a)) != len(ids_a):
        raise InputError("user_id repeats in A's predictions", path=name_a)
    only_a = [u for u in ids_a if u not in index_b]
    only_b = set(index_b) - set(ids_a)
    if only_a or only_b:
        example = (only_a or sorted(only_b, key=str))[0]
        raise InputError(f"the two prediction sets cover different users ({len(only_a)} only in A, "
                         f"{len(only_b)} only in B, e.g. user_id {example!r}): a paired comparison needs the "
                         f"same users; A = {name_a}, B = {name_b}")
    for pa in preds_a:
        pb = preds_b[index_b[pa.user_id]]
        if pa.target != pb.target:
            raise InputError(f"user_id {pa.user_id!r} has target {pa.target!r} in A but {pb.target!r} in B: "
                             f"the systems were not evaluated on the same split", path=name_b)
    ranks_a = prediction_ranks(preds_a)
    ranks_b = prediction_ranks([preds_b[index_b[u]] for u in ids_a])
    comparisons: list[MetricComparison] = []
    for key in metrics:
        canonical = metric_key(*parse_metric_key(key))
        comparisons.append(paired_comparison(per_user_metric(ranks_a, canonical),
                                             per_user_metric(ranks_b, canonical), metric=canonical,
                                             n_resamples=n_resamples, confidence=confidence, seed=seed))
    return ComparisonReport(a=name_a, b=name_b, comparisons=comparisons)
