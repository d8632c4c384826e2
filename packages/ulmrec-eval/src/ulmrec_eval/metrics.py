"""Ranking metrics for one relevant item per user: Recall@K (= HitRate@K), MRR@K and NDCG@K.

Everything works on **ranks**: the 1-based position of each user's target in that user's ranking, with
``0`` (:data:`MISS`) meaning the target is not ranked at all (e.g. not among the retrieved candidates).
Ranks come from scores (:func:`target_ranks`, ties resolved pessimistically, no sort) or from ranked lists
(:func:`ranks_from_lists`); the metrics are then cheap vectorised reductions over users.

With one target per user and rank ``r`` (``r = 0`` a miss), for ``U`` users:

* ``Recall@K = HitRate@K = (1/U) Σ_u 1[1 ≤ r_u ≤ K]``
* ``MRR@K = (1/U) Σ_u 1[1 ≤ r_u ≤ K] / r_u``
* ``NDCG@K = (1/U) Σ_u 1[1 ≤ r_u ≤ K] / log2(r_u + 1)`` (the ideal DCG of one target is 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ulmrec_eval.arrays import as_numpy, dtype_kind, id_kind

#: Rank meaning "the target is not in the ranking" (a miss at every K).
MISS = 0

#: Default cut-offs, as in the paper (K ∈ {1, 5, 10, 20}).
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)

#: Names of the metrics computed by :func:`compute_metrics`, in report order.
METRIC_NAMES: tuple[str, ...] = ("recall", "mrr", "ndcg")

#: Upper bound on the number of score cells compared at once by :func:`target_ranks` (bounds the memory).
DEFAULT_CHUNK_CELLS = 1 << 22

__all__ = [
    "DEFAULT_KS",
    "METRIC_NAMES",
    "MISS",
    "check_ranks",
    "compute_metrics",
    "hit_at_k_per_user",
    "metric_key",
    "mrr_at_k",
    "mrr_at_k_per_user",
    "ndcg_at_k",
    "ndcg_at_k_per_user",
    "normalise_ks",
    "parse_metric_key",
    "per_user_metric",
    "ranks_from_candidates",
    "ranks_from_lists",
    "recall_at_k",
    "recall_at_k_per_user",
    "target_ranks",
]


# --------------------------------------------------------------------------------------------------- ranks
def target_ranks(scores: npt.ArrayLike, targets: npt.ArrayLike, *,
                 chunk_cells: int = DEFAULT_CHUNK_CELLS) -> npt.NDArray[np.int64]:
    """1-based rank of each user's target column, ties resolved pessimistically; no sort.

    ``rank_u = 1 + #{j : s_uj > s_ut} + #{j ≠ t : s_uj = s_ut} = #{j : s_uj ≥ s_ut}``, so a constant scorer
    puts every target last and never scores 1.0. Masked entries scored ``-inf`` are never above a finite
    target (a target itself scored ``-inf`` ties with all of them and ranks behind every unmasked item).

    Args:
        scores: ``(U, N)`` scores, higher is better (numpy or torch, any numeric dtype). NaN is rejected.
        targets: ``(U,)`` column index of each user's target in ``[0, N)``.
        chunk_cells: at most this many score cells are compared at a time (users are processed in chunks),
            so a Beauty-sized full ranking (22,332 × 12,086) needs only a few MB of scratch memory.

    Returns:
        ``(U,)`` int64 ranks in ``[1, N]``.

    >>> target_ranks([[0.1, 0.9, 0.5], [1.0, 1.0, 1.0]], [2, 0])
    array([2, 3])
    >>> target_ranks([[0.3, -np.inf, 0.2]], [2])
    array([2])
    """
    s = np.asarray(as_numpy(scores, what="scores"))
    t = np.asarray(as_numpy(targets, what="targets"))
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (users, items), got shape {s.shape}")
    if t.ndim != 1 or t.shape[0] != s.shape[0]:
        raise ValueError(f"targets must be 1-D with one entry per user ({s.shape[0]}), got shape {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"targets must be integer column indices, got dtype {t.dtype}")
    n_users, n_items = s.shape
    out = np.empty(n_users, dtype=np.int64)
    if n_users == 0:
        return out
    if n_items == 0:
        raise ValueError("scores has no columns: there is nothing to rank")
    t = t.astype(np.int64, copy=False)
    if t.min() < 0 or t.max() >= n_items:
        raise ValueError(f"target column out of range [0, {n_items}): min {t.min()}, max {t.max()}")
    if not (np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)
            or s.dtype == np.bool_):
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    rows = max(1, int(chunk_cells) // n_items)
    for start in range(0, n_users, rows):
        stop = min(start + rows, n_users)
        block = s[start:stop]                                            # (B, N)
        _reject_nan(block, start)
        own = block[np.arange(stop - start), t[start:stop]][:, None]     # (B, 1)
        out[start:stop] = np.count_nonzero(block >= own, axis=1)
    return out


def ranks_from_lists(ranked: Sequence[Sequence[Any]] | npt.ArrayLike,
                     targets: Sequence[Any] | npt.ArrayLike) -> npt.NDArray[np.int64]:
    """1-based position of each target in its ranked list (first occurrence), :data:`MISS` (0) when absent.

    ``ranked`` is a sequence of per-user lists (any lengths, any hashable ids) or a ``(U, L)`` array/tensor of
    ids. Targets must be ids of the lists' type (a string ``"5"`` is never found among integers, so that
    mismatch raises ``ValueError`` instead of counting every user a miss).

    >>> ranks_from_lists([[5, 3, 9], [1, 2], []], [9, 7, 1])
    array([3, 0, 0])
    >>> ranks_from_lists(np.array([[4, 2], [2, 4]]), np.array([2, 2]))
    array([2, 1])
    """
    ranked = as_numpy(ranked, what="ranked")
    targets = as_numpy(targets, what="targets")
    if isinstance(ranked, np.ndarray) and ranked.ndim == 2:
        t = np.asarray(targets)
        if t.shape != (ranked.shape[0],):
            raise ValueError(f"targets must have shape ({ranked.shape[0]},), got {t.shape}")
        _same_id_kind({dtype_kind(ranked.dtype)} if ranked.size else set(), t.tolist())
        if ranked.shape[1] == 0:
            return np.zeros(ranked.shape[0], dtype=np.int64)
        eq = ranked == t[:, None]
        found = eq.any(axis=1)
        return np.where(found, eq.argmax(axis=1) + 1, MISS).astype(np.int64)
    lists = [items.tolist() if isinstance(items, np.ndarray) else list(items)
             for items in cast(Iterable[Any], ranked)]
    tgts = list(cast(Iterable[Any], targets.tolist() if isinstance(targets, np.ndarray) else targets))
    if len(lists) != len(tgts):
        raise ValueError(f"got {len(lists)} ranked lists but {len(tgts)} targets")
    _same_id_kind(_kinds(lists), tgts)
    out = np.zeros(len(lists), dtype=np.int64)
    for i, (seq, target) in enumerate(zip(lists, tgts, strict=True)):
        try:
            out[i] = seq.index(target) + 1
        except ValueError:
            out[i] = MISS
    return out


def _kinds(lists: list[list[Any]]) -> set[str]:
    """Id kinds (``int``/``str``/type name) of the items of ``lists`` (classified once per Python type)."""
    return {_type_kind(t) for t in {type(v) for seq in lists for v in seq}}


def _type_kind(t: type) -> str:
    if issubclass(t, (str, np.str_)):
        return "str"
    if issubclass(t, (int, np.integer)) and not issubclass(t, (bool, np.bool_)):
        return "int"
    return t.__name__


def _same_id_kind(item_kinds: set[str], targets: list[Any]) -> None:
    """Raise ``ValueError`` when a target's id kind appears nowhere among the ranked ids."""
    if not item_kinds:
        return
    for row, target in enumerate(targets):
        kind = id_kind(target)
        if kind not in item_kinds:
            raise ValueError(f"target of user row {row} is {kind} ({target!r}) but the ranked ids are "
                             f"{'/'.join(sorted(item_kinds))}: write targets and item ids as the same type")


def _reject_nan(scores: npt.NDArray[Any], first_row: int) -> None:
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
        bad = first_row + int(np.flatnonzero(np.isnan(scores).any(axis=1))[0])
        raise ValueError(f"NaN score for user row {bad}: scores must not contain NaN")


def ranks_from_candidates(candidates: Sequence[Sequence[Any]] | npt.ArrayLike,
                          scores: Sequence[Sequence[float]] | npt.ArrayLike,
                          targets: Sequence[Any] | npt.ArrayLike, *,
                          chunk_cells: int = DEFAULT_CHUNK_CELLS) -> npt.NDArray[np.int64]:
    """Pessimistic rank of each target among its own scored candidates (lists may differ in length).

    Per user, ``rank = #{candidates scoring ≥ the target's score}``; :data:`MISS` when the target is not a
    candidate. ``(U, L)`` arrays are ranked directly; lists of lists are padded with ``-inf`` into blocks of
    at most ``chunk_cells`` cells and ranked by :func:`target_ranks`.

    >>> ranks_from_candidates([[10, 11, 12], [7, 8]], [[0.2, 0.9, 0.2], [1.0, 0.0]], [12, 9])
    array([3, 0])
    """
    candidates = as_numpy(candidates, what="candidates")
    scores = as_numpy(scores, what="scores")
    targets = as_numpy(targets, what="targets")
    if isinstance(candidates, np.ndarray) and isinstance(scores, np.ndarray) and candidates.ndim == 2:
        if scores.shape != candidates.shape:
            raise ValueError(f"candidates {candidates.shape} and scores {scores.shape} differ in shape")
        _reject_nan(scores, 0)
        position = ranks_from_lists(candidates, np.asarray(targets))       # 1-based column, 0 = absent
        ranks = np.zeros(candidates.shape[0], dtype=np.int64)
        found = position > 0
        if found.any():
            ranks[found] = target_ranks(scores[found], position[found] - 1, chunk_cells=chunk_cells)
        return ranks
    cand_lists = list(cast(Iterable[Any], candidates))
    score_lists = list(cast(Iterable[Any], scores))
    target_list = list(cast(Iterable[Any], targets))
    if not (len(cand_lists) == len(score_lists) == len(target_list)):
        raise ValueError(f"got {len(cand_lists)} candidate lists, {len(score_lists)} score lists and "
                         f"{len(target_list)} targets: one of each per user is needed")
    n_users = len(cand_lists)
    lengths = np.fromiter((len(c) for c in cand_lists), dtype=np.int64, count=n_users)
    for u, (cands, sc) in enumerate(zip(cand_lists, score_lists, strict=True)):
        if len(cands) != len(sc):
            raise ValueError(f"user row {u}: {len(cands)} candidates but {len(sc)} scores")
    ranks = np.zeros(n_users, dtype=np.int64)
    start = 0
    while start < n_users:
        # grow the block while its padded size stays within chunk_cells (at least one user per block)
        stop, width = start + 1, max(int(lengths[start]), 1)
        while stop < n_users and max(width, int(lengths[stop])) * (stop + 1 - start) <= chunk_cells:
            width = max(width, int(lengths[stop]))
            stop += 1
        block = np.full((stop - start, width), -np.inf, dtype=np.float64)
        column = np.zeros(stop - start, dtype=np.int64)
        present = np.zeros(stop - start, dtype=bool)
        for row, u in enumerate(range(start, stop)):
            cands = cand_lists[u]
            seq = cands.tolist() if isinstance(cands, np.ndarray) else list(cands)
            try:
                column[row] = seq.index(target_list[u])
            except ValueError:
                continue
            present[row] = True
            block[row, : len(seq)] = np.asarray(score_lists[u], dtype=np.float64)
        _reject_nan(block, start)
        if present.any():
            ranked = target_ranks(block[present], column[present], chunk_cells=chunk_cells)
            # a target scored -inf ties with the padding: never rank it past its own list
            ranks[start:stop][present] = np.minimum(ranked, lengths[start:stop][present])
        start = stop
    return ranks


# ------------------------------------------------------------------------------------------------ metrics
def check_ranks(ranks: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """``ranks`` as a 1-D int64 array; ``ValueError`` unless they are whole numbers >= 0 (0 = miss).

    >>> check_ranks([1.0, 0, 3])
    array([1, 0, 3])
    """
    r = np.asarray(as_numpy(ranks, what="ranks"))
    if r.dtype == np.bool_ or not (np.issubdtype(r.dtype, np.integer) or np.issubdtype(r.dtype, np.floating)
                                   or r.size == 0):
        raise ValueError(f"ranks must be whole numbers (1-based, 0 = miss), got dtype {r.dtype}")
    if r.ndim != 1:
        raise ValueError(f"ranks must be 1-D (one per user), got shape {r.shape}")
    if r.size and not np.issubdtype(r.dtype, np.integer):
        if not np.all(np.isfinite(r)) or not np.all(r == np.round(r)):
            raise ValueError("ranks must be whole numbers (1-based, 0 = miss)")
        r = r.astype(np.int64)
    if r.size and r.min() < 0:
        raise ValueError(f"ranks must be >= 0 (1-based, 0 = miss), got {r.min()}")
    return r.astype(np.int64, copy=False)


def _check_ranks(ranks: npt.ArrayLike, k: int) -> npt.NDArray[np.int64]:
    r = check_ranks(ranks)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return r.astype(np.int64, copy=False)


def _mean(values: npt.NDArray[np.float64]) -> float:
    if values.size == 0:
        raise ValueError("no users: metrics of an empty set are undefined")
    return float(values.mean())


def hit_at_k_per_user(ranks: npt.ArrayLike, k: int) -> npt.NDArray[np.bool_]:
    """Per-user hit indicator ``1[1 ≤ r_u ≤ K]``.

    >>> hit_at_k_per_user([1, 3, 0, 7], 5)
    array([ True,  True, False, False])
    """
    r = _check_ranks(ranks, k)
    return (r >= 1) & (r <= k)


def recall_at_k_per_user(ranks: npt.ArrayLike, k: int) -> npt.NDArray[np.float64]:
    """Per-user Recall@K for one target: ``1[1 ≤ r_u ≤ K]`` as float (= HitRate@K).

    >>> recall_at_k_per_user([1, 3, 0, 7], 5)
    array([1., 1., 0., 0.])
    """
    return hit_at_k_per_user(ranks, k).astype(np.float64)


def mrr_at_k_per_user(ranks: npt.ArrayLike, k: int) -> npt.NDArray[np.float64]:
    """Per-user reciprocal rank cut at K: ``1[1 ≤ r_u ≤ K] / r_u``.

    >>> mrr_at_k_per_user([1, 4, 0, 7], 5)
    array([1.  , 0.25, 0.  , 0.  ])
    """
    r = _check_ranks(ranks, k)
    hit = (r >= 1) & (r <= k)
    out = np.zeros(r.shape, dtype=np.float64)
    out[hit] = 1.0 / r[hit]
    return out


def ndcg_at_k_per_user(ranks: npt.ArrayLike, k: int) -> npt.NDArray[np.float64]:
    """Per-user NDCG@K for one target: ``1[1 ≤ r_u ≤ K] / log2(r_u + 1)`` (the ideal DCG is 1).

    >>> ndcg_at_k_per_user([1, 3, 0, 7], 5)
    array([1. , 0.5, 0. , 0. ])
    """
    r = _check_ranks(ranks, k)
    hit = (r >= 1) & (r <= k)
    out = np.zeros(r.shape, dtype=np.float64)
    out[hit] = 1.0 / np.log2(r[hit] + 1.0)
    return out


def recall_at_k(ranks: npt.ArrayLike, k: int) -> float:
    """Recall@K = HitRate@K = ``(1/U) Σ_u 1[1 ≤ r_u ≤ K]`` (one target per user; rank 0 = miss).

    >>> recall_at_k([1, 3, 0, 7], 5)
    0.5
    """
    return _mean(recall_at_k_per_user(ranks, k))


def mrr_at_k(ranks: npt.ArrayLike, k: int) -> float:
    """MRR@K = ``(1/U) Σ_u 1[1 ≤ r_u ≤ K] / r_u`` (rank 0 = miss).

    >>> mrr_at_k([1, 4, 0, 7], 5)
    0.3125
    """
    return _mean(mrr_at_k_per_user(ranks, k))


def ndcg_at_k(ranks: npt.ArrayLike, k: int) -> float:
    """NDCG@K = ``(1/U) Σ_u 1[1 ≤ r_u ≤ K] / log2(r_u + 1)`` for one target per user (rank 0 = miss).

    >>> ndcg_at_k([1, 3, 0, 7], 5)
    0.375
    """
    return _mean(ndcg_at_k_per_user(ranks, k))


_PER_USER = {"recall": recall_at_k_per_user, "hit": recall_at_k_per_user, "hitrate": recall_at_k_per_user,
             "mrr": mrr_at_k_per_user, "ndcg": ndcg_at_k_per_user}


def metric_key(name: str, k: int) -> str:
    """The report key of a metric at K, e.g. ``metric_key("ndcg", 10) == "ndcg@10"``."""
    return f"{name}@{k}"


def parse_metric_key(key: str) -> tuple[str, int]:
    """Split ``"ndcg@10"`` into ``("ndcg", 10)``; ``hit``/``hitrate`` are accepted aliases of ``recall``.

    >>> parse_metric_key("HitRate@5")
    ('recall', 5)
    """
    name, sep, k_text = key.strip().lower().partition("@")
    if not sep or name not in _PER_USER or not k_text.isdigit() or int(k_text) < 1:
        raise ValueError(f"unknown metric {key!r}: expected NAME@K with NAME in "
                         f"{sorted(_PER_USER)} and K a positive integer, e.g. ndcg@10")
    return ("recall" if name in ("hit", "hitrate") else name), int(k_text)


def per_user_metric(ranks: npt.ArrayLike, key: str) -> npt.NDArray[np.float64]:
    """Per-user values of the metric named ``key`` (``"recall@10"``, ``"mrr@5"``, ``"ndcg@20"``, ...)."""
    name, k = parse_metric_key(key)
    return _PER_USER[name](ranks, k)


def normalise_ks(ks: Iterable[int] | int) -> tuple[int, ...]:
    """Distinct cut-offs in ascending order (one int means that one K); ``ValueError`` unless all are >= 1.

    >>> normalise_ks(10), normalise_ks([20, 5, 5])
    ((10,), (5, 20))
    """
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = [int(ks)]
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ValueError(f"cut-offs must be a positive integer or integers, got {ks!r}")
    values = list(ks)
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in values):
        raise ValueError(f"cut-offs must be positive integers, got {values!r}")
    out = tuple(sorted({int(k) for k in values}))
    if not out or out[0] < 1:
        raise ValueError(f"cut-offs must be positive integers, got {list(out)}")
    return out


def compute_metrics(ranks: npt.ArrayLike, ks: Iterable[int] | int = DEFAULT_KS) -> dict[str, float]:
    """All metrics at every K: keys ``recall@K``, ``mrr@K``, ``ndcg@K`` (metric-major, K ascending).

    ``ranks``: 1-based target ranks, 0 = miss (numpy, torch or a list); ``ks``: cut-offs or a single K.

    >>> m = compute_metrics([1, 2, 0, 6], ks=(1, 5))
    >>> {key: round(value, 4) for key, value in m.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'recall@1': 0.25, 'recall@5': 0.5, 'mrr@1': 0.25, 'mrr@5': 0.375,
     'ndcg@1': 0.25, 'ndcg@5': 0.4077}
    """
    r = _check_ranks(ranks, 1)
    if r.size == 0:
        raise ValueError("no users: metrics of an empty set are undefined")
    kk = normalise_ks(ks)
    n = r.size
    hit_any = r >= 1
    safe = np.where(hit_any, r, 1)
    recip = np.where(hit_any, 1.0 / safe, 0.0)
    gain = np.where(hit_any, 1.0 / np.log2(safe + 1.0), 0.0)
    out: dict[str, float] = {}
    cols: dict[str, dict[int, float]] = {"recall": {}, "mrr": {}, "ndcg": {}}
    for k in kk:
        inside = hit_any & (r <= k)
        cols["recall"][k] = float(np.count_nonzero(inside)) / n
        cols["mrr"][k] = float(recip[inside].sum()) / n
        cols["ndcg"][k] = float(gain[inside].sum()) / n
    for name in METRIC_NAMES:
        for k in kk:
            out[metric_key(name, k)] = cols[name][k]
    return out
