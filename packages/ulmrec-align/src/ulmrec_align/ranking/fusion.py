"""Fusion of the LLM's ranking with the retriever's scores (``ulmrec align rank --fuse-retriever auto|W``).

For one user with candidates ``j`` (the retriever's top-n, shown as letters)::

    s_j = llm_j + W · z_j,      z_j = (r_j − mean(r)) / std(r)

``llm_j`` is the LLM's score (letter log-probability with the letter prior removed), ``r_j`` the retriever's
score of the same item and ``z`` its standardisation over the user's n candidates (0 when all are equal).
``W = 0`` is the pure LLM (the paper's setting); a large ``W`` is the retriever's order with the LLM breaking
ties. ``auto`` picks ``W`` from :data:`WEIGHT_GRID` by NDCG@10 on validation users (ties: the smaller ``W``),
so a weak LLM cannot rank below the retriever on validation and a strong one decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ulmrec_align.ranking.ranker import RankRow
from ulmrec_align.retrieval.candidates import CandidateRow
from ulmrec_eval.runtime.errors import InputError

#: The weights ``auto`` tries, from the pure LLM (0) to the retriever's order (64).
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 64.0)


def standardise(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(v − mean) / std`` over the entries (population std); zeros when they are all equal.

    >>> standardise([1.0, 2.0, 3.0]).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    """
    v = np.asarray(values, dtype=np.float64)
    std = float(v.std())
    return np.zeros_like(v) if std == 0.0 or not np.isfinite(std) else (v - v.mean()) / std


def retriever_scores(row: RankRow, retrieved: CandidateRow) -> np.ndarray:
    """The retriever's score of each of ``row``'s candidates, in ``row``'s order."""
    by_item = dict(zip(retrieved.candidates, retrieved.scores, strict=True))
    missing = [item for item in row.candidates if item not in by_item]
    if missing:
        raise InputError(f"user {row.user_id}: candidates {missing[:3]} are not in the retriever's row; rank "
                         "with the candidates file these predictions were made from")
    return np.array([by_item[item] for item in row.candidates], dtype=np.float64)


def fuse(row: RankRow, retrieved: CandidateRow, weight: float) -> RankRow:
    """``row`` with scores ``llm + weight · z(retriever)`` and its source and weight recorded."""
    if weight < 0 or not np.isfinite(weight):
        raise InputError(f"--fuse-retriever weight must be a finite number >= 0, got {weight}")
    llm: np.ndarray = np.asarray(row.scores, dtype=np.float64)
    fused: np.ndarray = llm + weight * standardise(retriever_scores(row, retrieved))
    return row.model_copy(update={"scores": fused.tolist(), "fusion_weight": weight,
                                  "source": f"fused(w={weight:g}):{row.source}"})


def ndcg_at_10(rows: Sequence[RankRow]) -> float:
    """Mean NDCG@10 of rows ranked by their scores (pessimistic ties; a target not among the candidates
    counts 0)."""
    total = 0.0
    for row in rows:
        if row.target not in row.candidates:
            continue
        scores = np.asarray(row.scores, dtype=np.float64)
        rank = int((scores >= scores[row.candidates.index(row.target)]).sum())
        total += 1.0 / np.log2(rank + 1) if rank <= 10 else 0.0
    return total / max(len(rows), 1)


@dataclass(frozen=True)
class FusionChoice:
    """The weight chosen on validation users and what each weight scored there."""

    weight: float
    n_users: int
    ndcg_by_weight: dict[float, float] = field(default_factory=dict)
    retriever_ndcg: float = 0.0

    def describe(self) -> str:
        llm, chosen = self.ndcg_by_weight.get(0.0, float("nan")), self.ndcg_by_weight[self.weight]
        return (f"W={self.weight:g} chosen on {self.n_users} validation users (NDCG@10: LLM {llm:.4f}, "
                f"retriever {self.retriever_ndcg:.4f}, fused {chosen:.4f})")


def choose_weight(valid_rows: Sequence[RankRow], retrieved: Mapping[tuple[str, int], CandidateRow],
                  grid: Sequence[float] = WEIGHT_GRID) -> FusionChoice:
    """The weight of ``grid`` with the best validation NDCG@10 (the smallest among equals)."""
    if not valid_rows:
        raise InputError("--fuse-retriever auto needs validation users to choose W")
    pairs = [(row, retrieved[("valid", row.user_id)]) for row in valid_rows]
    scored = {float(w): ndcg_at_10([fuse(r, c, float(w)) for r, c in pairs]) for w in grid}
    best = max(scored.values())
    weight = min(w for w, v in scored.items() if v >= best - 1e-12)
    retriever = ndcg_at_10([r.model_copy(update={"scores": retriever_scores(r, c).tolist()})
                            for r, c in pairs])
    return FusionChoice(weight=weight, n_users=len(pairs), ndcg_by_weight=scored, retriever_ndcg=retriever)
