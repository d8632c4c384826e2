"""An independent reference for the metrics: plain loops and a full sort, sharing nothing with ulmrec_eval.

The target's rank is its position after sorting the items by score, best first, with every item tied with
the target placed before it (pessimistic ties).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def ref_rank(scores: Sequence[float], target: int) -> int:
    """1-based position of column ``target`` after a full sort, ties broken against the target."""
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], 1 if j == target else 0))
    return order.index(target) + 1


def ref_rank_in_list(ranked: Sequence[object], target: object) -> int:
    """1-based position of ``target`` in ``ranked``; 0 when absent."""
    for position, item in enumerate(ranked, start=1):
        if item == target:
            return position
    return 0


def ref_metrics(ranks: Sequence[int], k: int) -> dict[str, float]:
    """Recall@K, MRR@K and NDCG@K by explicit loops over users (rank 0 = miss)."""
    recall = mrr = ndcg = 0.0
    for rank in ranks:
        if rank == 0 or rank > k:
            continue
        recall += 1.0
        mrr += 1.0 / rank
        # DCG of the one relevant item at position `rank` over the ideal DCG (the item at position 1)
        ndcg += (1.0 / math.log2(rank + 1)) / (1.0 / math.log2(2))
    n = len(ranks)
    return {f"recall@{k}": recall / n, f"mrr@{k}": mrr / n, f"ndcg@{k}": ndcg / n}
