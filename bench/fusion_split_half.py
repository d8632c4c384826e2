"""Benchmark: can W be chosen on the validation users at all? Split-half cross-validation of the fusion rules.

Run: ``.venv/bin/python bench/fusion_split_half.py --valid-rows ROWS --candidates CANDIDATES [--splits 500]``
where ``ROWS`` is ``ulmrec align rank --split valid --retrieved-only`` of a tuned model without fusion (the
LLM's own scores of the validation users) and ``CANDIDATES`` the retriever's ``candidates.jsonl`` it ranked.
Nothing here reads a test user.

Prints, over the validation users whose target is among the candidates: NDCG@10 of ``z(LLM) + W·z(retriever)``
for a few W of the grid (``ranking.fusion.WEIGHT_GRID``), the retriever's order, and the W that ``auto``
chooses (the one-standard-error rule, ``ranking.fusion.choose_weight``). Then ``--splits`` random halvings:
W chosen on one half by each rule (``argmax``: the best NDCG@10; ``1-SE``: this project's rule) and the
fused NDCG@10 minus the retriever's on the other half — the gain a fused ranking can expect on users W was
not fitted to. A mean near 0 says the validation users cannot tell a useful W from noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

SHOWN = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def pick(ndcg: npt.NDArray[np.float64], rule: str) -> int:
    """Index of the grid weight ``rule`` chooses from per-(weight, user) NDCG@10 ``(W, U)``; the 1-SE rule as
    :func:`ulmrec_align.ranking.fusion.best_weight` (the largest W within one standard error of the best)."""
    mean = ndcg.mean(axis=1)
    best = int(np.argmax(mean))
    if rule == "argmax":
        return best
    for i in range(len(mean) - 1, -1, -1):
        gap = ndcg[best] - ndcg[i]
        se = float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else 0.0
        if mean[i] >= mean[best] - se - 1e-12:
            return i
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--valid-rows", type=Path, required=True)
    parser.add_argument("--candidates", type=Path, required=True)
    parser.add_argument("--splits", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from ulmrec_align.ranking.fusion import WEIGHT_GRID, choose_weight, fused_ndcg_per_user, retriever_scores
    from ulmrec_align.ranking.ranker import RankRow
    from ulmrec_align.retrieval.candidates import read_candidates
    from ulmrec_eval.runtime.errors import UlmrecError
    from ulmrec_eval.runtime.io import read_jsonl_models

    for path in (args.valid_rows, args.candidates):
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such file")
    try:
        rows = [r for r in read_jsonl_models(args.valid_rows, RankRow)
                if r.split == "valid" and r.target in r.candidates]
        retrieved = read_candidates(args.candidates, split="valid")
    except UlmrecError as exc:
        raise SystemExit(f"error: {exc}") from None
    if len(rows) < 4:
        raise SystemExit(f"{args.valid_rows}: {len(rows)} validation users with the target among the "
                         "candidates; rank with `align rank --split valid --retrieved-only`")
    if any(r.llm_scores is not None for r in rows):
        raise SystemExit(f"{args.valid_rows}: these rows are fused; rank without --fuse-retriever")
    retriever = [retriever_scores(r, retrieved[("valid", r.user_id)]) for r in rows]
    targets = [r.candidates.index(r.target) for r in rows]
    llm = [r.scores for r in rows]
    grid = list(WEIGHT_GRID)
    ndcg = np.array([fused_ndcg_per_user(llm, retriever, targets, w) for w in grid])     # (W, U)
    alone = fused_ndcg_per_user(retriever, [np.zeros(len(r)) for r in retriever], targets, 0.0)
    choice = choose_weight(rows, retrieved)
    print(f"{args.valid_rows}: {len(rows)} validation users; {choice.describe()}")
    shown = [int(np.argmin(np.abs(np.asarray(grid) - w))) for w in SHOWN]
    print("W       " + " ".join(f"{grid[i]:>7.3g}" for i in shown) + "  retriever")
    print("NDCG@10 " + " ".join(f"{ndcg[i].mean():7.4f}" for i in shown) + f"  {alone.mean():9.4f}")
    rng = np.random.default_rng(args.seed)
    users = len(rows)
    gains: dict[str, list[float]] = {"argmax": [], "1-SE": []}
    for _ in range(args.splits):
        order = rng.permutation(users)
        fit, held = order[: users // 2], order[users // 2:]
        for rule, out in gains.items():
            i = pick(ndcg[:, fit], rule)
            out.append(float((ndcg[i, held] - alone[held]).mean()))
    for rule, values in gains.items():
        v = np.asarray(values)
        print(f"{rule:6s} W chosen on half the users, fused − retriever on the other half: mean "
              f"{v.mean():+.4f} (5–95 %: {np.percentile(v, 5):+.4f} … {np.percentile(v, 95):+.4f}; > 0 in "
              f"{(v > 0).mean():.0%} of {args.splits} splits)")


if __name__ == "__main__":
    main()
