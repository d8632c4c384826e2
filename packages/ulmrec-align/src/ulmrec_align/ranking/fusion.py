"""Fusion of the LLM's ranking with the retriever's scores (``ulmrec align rank --fuse-retriever auto|W``).

For one user with candidates ``j`` (the retriever's top-n)::

    s_j = z(llm)_j + W · z(retriever)_j,      z(v)_j = (v_j − mean(v)) / std(v)

Both scores are standardised over the user's n candidates (0 when all are equal), so ``W`` is the relative
weight of the retriever whatever the scale of the LLM's scores (letter log-probabilities, title PMI or
relevance log-odds). ``W = 0`` is the pure LLM (the paper's setting); a large ``W`` is the retriever's order
with the LLM breaking ties. ``auto`` picks ``W`` from :data:`WEIGHT_GRID` (0 and 81 weights spaced evenly in
log scale from 0.01 to 100) by NDCG@10 on validation users only, by the **one-standard-error rule towards
the retriever**: the largest ``W`` whose validation NDCG@10 is within one standard error (of the paired
per-user difference) of the best one. On a few dozen validation users an untrained LLM's noise can make a
small ``W`` look best by chance (measured: a W of 1.41 chosen on 60 users was 0.048 below the retriever at
test, docs/results.md); the rule keeps the retriever's order unless the LLM's gain stands out of that
noise. Never fit ``W`` on training prefixes: the retriever was trained on those targets and its scores there
are overconfident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ulmrec_align.ranking.ranker import RankRow
from ulmrec_align.retrieval.candidates import CandidateRow
from ulmrec_eval.metrics import ndcg_at_k_per_user, target_ranks
from ulmrec_eval.runtime.errors import InputError

#: One user's scores of its candidates.
Scores = Sequence[float] | npt.NDArray[np.floating]

#: The weights ``auto`` tries: the pure LLM (0), then 0.01 … 100 evenly in log scale (10 % steps).
WEIGHT_GRID: tuple[float, ...] = (0.0, *(round(float(w), 6) for w in np.geomspace(0.01, 100.0, 81)))


def standardise(values: Scores) -> npt.NDArray[np.float64]:
    """``(v − mean) / std`` over the entries (population std); zeros when they are all equal.

    >>> standardise([1.0, 2.0, 3.0]).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    """
    v = np.asarray(values, dtype=np.float64)
    std = float(v.std())
    return np.zeros_like(v) if std == 0.0 or not np.isfinite(std) else (v - v.mean()) / std


def fused_scores(llm: Scores, retriever: Scores, weight: float) -> npt.NDArray[np.float64]:
    """``z(llm) + weight · z(retriever)`` of one user's candidates.

    >>> fused_scores([0.0, 10.0], [1.0, 0.0], 0.5).tolist()
    [-0.5, 0.5]
    """
    if weight < 0 or not np.isfinite(weight):
        raise InputError(f"--fuse-retriever weight must be a finite number >= 0, got {weight}")
    return standardise(llm) + weight * standardise(retriever)


def prior_weight(retriever: Sequence[Scores], targets: Sequence[int], *, upper: float = 50.0) -> float:
    """``β`` maximising ``Σ_u log softmax(β · z(r_u))[t_u]``: the retriever's standardised scores as a
    listwise model of the target, fitted by likelihood (``targets``: each user's target position among its
    candidates; users with −1 are left out). The log-likelihood is concave in ``β`` (its derivative
    ``Σ_u z_{u,t} − E_{softmax}[z_u]`` falls as ``β`` grows), so bisection on the derivative finds it, in
    ``[0, upper]``. Fit it on validation users only: on training prefixes the retriever is overconfident.

    Three pools of four put the target first (z = +1 against −1): ``softmax(2β) = 3/4``, ``β = ln 3 / 2``.

    >>> round(prior_weight([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0, 0, 0, 0]), 3)
    0.549
    """
    pools = [(standardise(r), t) for r, t in zip(retriever, targets, strict=True) if t >= 0]
    if not pools:
        raise InputError("no validation pool holds its target: nothing to fit the retriever's weight on")

    def slope(beta: float) -> float:
        total = 0.0
        for z, t in pools:
            p = np.exp(beta * z - float(np.max(beta * z)))
            total += float(z[t] - (p * z).sum() / p.sum())
        return total

    if slope(0.0) <= 0.0:
        return 0.0
    if slope(upper) >= 0.0:
        return upper
    low, high = 0.0, upper
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if slope(middle) > 0.0 else (low, middle)
    return round((low + high) / 2, 6)


def fused_ndcg_at_10(llm: Sequence[Scores], retriever: Sequence[Scores],
                     targets: Sequence[int], weight: float) -> float:
    """Mean NDCG@10 of users ranked by :func:`fused_scores` (``targets``: each user's target position among
    its candidates, or −1 when it is not one of them: 0 for that user); ties pessimistic (ulmrec-eval)."""
    values = fused_ndcg_per_user(llm, retriever, targets, weight)
    return float(np.mean(values)) if len(values) else 0.0


def fused_ndcg_per_user(llm: Sequence[Scores], retriever: Sequence[Scores], targets: Sequence[int],
                        weight: float) -> npt.NDArray[np.float64]:
    """Per-user NDCG@10 of :func:`fused_ndcg_at_10`."""
    values = []
    for scores, ret, target in zip(llm, retriever, targets, strict=True):
        if target < 0:
            values.append(0.0)
            continue
        fused = fused_scores(scores, ret, weight)
        rank = target_ranks(fused[None, :], np.array([target]))
        values.append(float(ndcg_at_k_per_user(rank, 10)[0]))
    return np.asarray(values, dtype=np.float64)


def best_weight(llm: Sequence[Scores], retriever: Sequence[Scores], targets: Sequence[int],
                grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, dict[float, float]]:
    """``(W, {w: NDCG@10})``: the largest weight of ``grid`` whose fused NDCG@10 is within one standard error
    of the best weight's (the standard error of the paired per-user difference; 0 with one user).

    >>> best_weight([[0.0, 1.0]], [[1.0, 0.0]], [1], grid=(0.0, 0.5, 2.0))[0]
    0.5
    """
    per_user = {float(w): fused_ndcg_per_user(llm, retriever, targets, float(w)) for w in grid}
    scored = {w: float(v.mean()) if len(v) else 0.0 for w, v in per_user.items()}
    top = max(scored.values())
    best = min(w for w, v in scored.items() if v >= top - 1e-12)
    for w in sorted(scored, reverse=True):
        gap = per_user[best] - per_user[w]
        se = float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else 0.0
        if scored[w] >= top - se - 1e-12:
            return w, scored
    return best, scored


def retriever_scores(row: RankRow, retrieved: CandidateRow) -> npt.NDArray[np.float64]:
    """The retriever's score of each of ``row``'s candidates, in ``row``'s order."""
    by_item = dict(zip(retrieved.candidates, retrieved.scores, strict=True))
    missing = [item for item in row.candidates if item not in by_item]
    if missing:
        raise InputError(f"user {row.user_id}: candidates {missing[:3]} are not in the retriever's row; rank "
                         "with the candidates file these predictions were made from")
    return np.array([by_item[item] for item in row.candidates], dtype=np.float64)


def fuse(row: RankRow, retrieved: CandidateRow, weight: float) -> RankRow:
    """``row`` with scores ``z(llm) + weight · z(retriever)`` and its source and weight recorded."""
    fused = fused_scores(row.scores, retriever_scores(row, retrieved), weight)
    return row.model_copy(update={"scores": fused.tolist(), "fusion_weight": weight, "llm_scores": row.scores,
                                  "source": f"fused(w={weight:g}):{row.source}"})


def _target_position(row: RankRow) -> int:
    return row.candidates.index(row.target) if row.target in row.candidates else -1


def ndcg_at_10(rows: Sequence[RankRow]) -> float:
    """Mean NDCG@10 of rows ranked by their scores (pessimistic ties; a target not among the candidates
    counts 0)."""
    flat = [np.zeros(len(r.scores)) for r in rows]
    return fused_ndcg_at_10([r.scores for r in rows], flat, [_target_position(r) for r in rows], 0.0)


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
    retriever = [retriever_scores(row, retrieved[("valid", row.user_id)]) for row in valid_rows]
    targets = [_target_position(row) for row in valid_rows]
    weight, scored = best_weight([r.scores for r in valid_rows], retriever, targets, grid)
    alone = fused_ndcg_at_10([r.tolist() for r in retriever], [np.zeros(len(r)) for r in retriever], targets,
                             0.0)
    return FusionChoice(weight=weight, n_users=len(valid_rows), ndcg_by_weight=scored, retriever_ndcg=alone)
