"""Benchmark: how much of a trained relevance head's score is the user's hidden trait, on the demo world.

Run: ``.venv/bin/python bench/trait_reading.py --label text=runs/demo-text-epoch [--label …]`` on finished
runs of a synthetic world (``ulmrec data synthetic``) whose rank stage fused with the retriever
(``--fuse-retriever``, so each row keeps the LLM's own scores). Deterministic; seconds.

Every user of the world has a hidden trait and every item title shows one (``bench/world.py``). For each
subset test user (target in the candidates) it standardises the LLM's scores over the pool and prints:

* **trait gap** — the mean over pools of ``z(LLM)`` of the candidates carrying the user's trait minus that
  of the others (pools holding both), with its standard error: how strongly the head reads the trait;
* **NDCG@10 by W** — ``z(LLM) + W · z(LRURec)`` at a few W, beside the same fusion of a *perfect trait
  reader* (the 0/1 indicator "carries the user's trait", standardised) — the most a head that had learned
  only the trait could add to the retriever by this fusion, on the same users. ``W = inf`` is LRURec's order.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from world import item_trait, ndcg_at_10, user_traits

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.ranking.fusion import standardise
from ulmrec_align.ranking.ranker import RankRow
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_app.pipeline.layout import RunLayout
from ulmrec_eval.runtime.io import read_jsonl_models

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, math.inf)


def fused_order(candidates: list[int], llm: np.ndarray, retriever: np.ndarray, weight: float) -> list[int]:
    """Candidates by ``llm + weight · retriever`` (both standardised), ties in the retriever's order."""
    scores = retriever if math.isinf(weight) else llm + weight * retriever
    return [candidates[i] for i in np.argsort(-scores, kind="stable")]


def measure(run: Path) -> tuple[list[float], dict[tuple[str, float], list[float]]]:
    layout = RunLayout(run)
    if not sorted(layout.raw.glob("traits_*.jsonl")):
        raise SystemExit(f"{layout.raw} has no traits_*.jsonl: not a run of a synthetic world")
    if not layout.predictions.is_file():
        raise SystemExit(f"{run}: no rank/predictions.jsonl (a finished run's folder)")
    dataset = PreparedDataset.load(layout.dataset)
    traits = [item_trait(t) for t in dataset.titles()]
    own = user_traits(run, dataset)
    retrieved = read_candidates(layout.candidates, split="test")
    gaps: list[float] = []
    ndcg: dict[tuple[str, float], list[float]] = {}
    for row in read_jsonl_models(layout.predictions, RankRow):
        if row.split != "test" or row.target not in row.candidates:
            continue
        if row.llm_scores is None:
            raise SystemExit(f"{run}: its rank stage did not fuse (no llm_scores): --fuse-retriever")
        candidates = list(row.candidates)
        mine = retrieved[("test", row.user_id)]
        by_item = dict(zip(mine.candidates, mine.scores, strict=True))
        retriever = standardise([by_item[i] for i in candidates])
        llm = standardise(row.llm_scores)
        carries = np.array([traits[i] == own[row.user_id] for i in candidates])
        both = bool(carries.any() and (~carries).any())
        if both:
            gaps.append(float(llm[carries].mean() - llm[~carries].mean()))
        reader = standardise(carries.astype(float)) if both else np.zeros(len(candidates))
        for weight in WEIGHTS:
            for name, scores in (("LLM", llm), ("trait reader", reader)):
                order = fused_order(candidates, scores, retriever, weight)
                ndcg.setdefault((name, weight), []).append(ndcg_at_10(order, row.target))
    if not gaps:
        raise SystemExit(f"{run}: no subset test user with both kinds of candidate")
    return gaps, ndcg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", action="append", required=True, metavar="NAME=RUN",
                        help="A finished run folder, named for the table (repeatable).")
    args = parser.parse_args()
    for spec in args.label:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"--label {spec}: expected NAME=RUN")
        gaps, ndcg = measure(Path(folder))
        users = len(ndcg[("LLM", 0.0)])
        print(f"{name} ({folder}): {users} subset test users; trait gap z(LLM) carriers − others "
              f"{np.mean(gaps):+.3f} ± {np.std(gaps, ddof=1) / math.sqrt(len(gaps)):.3f} "
              f"({len(gaps)} pools holding both)")
        print("  W        " + "".join(f"{w:>9g}" for w in WEIGHTS))
        for scorer in ("LLM", "trait reader"):
            print(f"  {scorer:<13}" + "".join(f"{np.mean(ndcg[(scorer, w)]):9.4f}" for w in WEIGHTS))


if __name__ == "__main__":
    main()
