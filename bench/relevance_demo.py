"""Benchmark: does the fused LLM rank above the retriever's own order? Pooled over runs (seeds, variants).

Run: ``.venv/bin/python bench/relevance_demo.py RUN [RUN ...] [--label NAME=RUN,RUN ...]`` on finished runs
whose rank stage fused with the retriever (``[rank] fuse_retriever = "auto"``, the demo's setting), e.g.
``runs/demo runs/demo-seed1 runs/demo-seed2`` (``ulmrec demo --seed N``) or an ablation's
``runs/X/demo-full-s0 …``. Each ``--label`` groups runs into one system (``full=runs/a,runs/b``); without it
every run given is one group named ``runs``.

Per group, over every (run, test user) pair whose target the retriever put in the LLM's candidates (the
subset), NDCG@10 of:

- ``LRURec order`` — the retriever's own order of the same candidates;
- ``random order`` — the expected NDCG@10 of a uniformly random order (exact: ``(1/n) Σ_{r ≤ min(n,10)}
  1/log2(r+1)``);
- ``LLM alone`` — the LLM's own scores (``llm_scores`` of the fused rows);
- ``fused`` — the rows' scores, ``z(LLM) + W·z(LRURec)`` with the run's W chosen on validation;
- ``LLM + β·z`` — for runs trained with ``align train --retriever-prior`` only (β in their
  ``train_manifest.json``): the LLM's raw log-odds plus β times the retriever's standardised scores, the very
  combination the run was trained on;

and paired comparisons (``ulmrec_eval.compare.paired_comparison``: bootstrap 95 % CI, sign-flip p):
fused − LRURec, LLM alone − random, and, between groups given with ``--label``, each group's fused − the
first group's fused, and the same for the LLM alone, over the pairs both have (the same users of the same
world; several runs of one world in a group — seeds — are distinct pairs, and pair across groups in the
order given: the k-th run of a world in one group with the k-th in the other). Prints one table;
``--json`` writes the figures. ``--valid-rows RUN=FILE`` chooses a run's W anew on more validation users
(its LLM's unfused rankings of them) with this version's rule, and re-fuses its test rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from ulmrec_align.ranking.ranker import RankRow
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_app.pipeline.layout import RunLayout
from ulmrec_eval.compare import paired_comparison
from ulmrec_eval.metrics import ndcg_at_k_per_user, target_ranks
from ulmrec_eval.runtime.io import read_jsonl_models

#: The column of runs trained with a retriever prior: the LLM's log-odds + β z(LRURec), as trained.
PRIOR = "LLM + β·z"


def ndcg10(scores: list[float], target: int) -> float:
    """NDCG@10 of the target's position ``target`` under ``scores`` (pessimistic ties)."""
    rank = target_ranks(np.asarray([scores], dtype=np.float64), np.array([target]))
    return float(ndcg_at_k_per_user(rank, 10)[0])


def random_ndcg10(n: int) -> float:
    """Expected NDCG@10 of a uniformly random order of ``n`` candidates, one of them the target."""
    return float(sum(1.0 / np.log2(r + 1) for r in range(1, min(n, 10) + 1)) / n)


def run_pairs(run: Path, valid_rows: Path | None = None) -> dict[tuple[str, int], dict[str, float]]:
    """``(world, user) -> {system: NDCG@10}`` for the run's subset test users (``world``: the sha256 of the
    retriever's candidates file, shared by the runs of one world). With ``valid_rows`` (the LLM's unfused
    rankings of validation users, ``align rank --split valid``), W is chosen anew on them with this
    version's rule (``ranking.fusion.choose_weight``) and the test rows re-fused from their ``llm_scores``."""
    layout = RunLayout(run)
    predictions = layout.predictions
    if not predictions.is_file():
        raise SystemExit(f"{run}: no rank/predictions.jsonl (a finished run's folder, e.g. runs/demo)")
    rows = list(read_jsonl_models(predictions, RankRow))
    retrieved = read_candidates(layout.candidates, split="test")
    if not rows or rows[0].llm_scores is None:
        raise SystemExit(f"{run}: its rank stage did not fuse with the retriever (no llm_scores); rank with "
                         "--fuse-retriever auto")
    weight = None
    if valid_rows is not None:
        from ulmrec_align.ranking.fusion import choose_weight, fused_scores

        valid = [r for r in read_jsonl_models(valid_rows, RankRow) if r.split == "valid"]
        choice = choose_weight(valid, read_candidates(layout.candidates, split="valid"))
        weight = choice.weight
        print(f"{run}: {choice.describe()}")
    out = {}
    beta = None
    if layout.train_manifest.is_file():
        beta = json.loads(layout.train_manifest.read_text()).get("retriever_prior_weight")
    # runs of one world (one retriever's candidates) pair up across variants, whatever their names
    world = hashlib.sha256(layout.candidates.read_bytes()).hexdigest()
    for row in rows:
        if row.split != "test" or row.target not in row.candidates:
            continue
        target = row.candidates.index(row.target)
        mine = retrieved[("test", row.user_id)]
        by_item = dict(zip(mine.candidates, mine.scores, strict=True))
        fused = row.scores
        if weight is not None:
            fused = fused_scores(row.llm_scores or [], [by_item[i] for i in row.candidates], weight).tolist()
        out[(world, row.user_id)] = {
            "LRURec order": ndcg10([by_item[i] for i in row.candidates], target),
            "random order": random_ndcg10(len(row.candidates)),
            "LLM alone": ndcg10(list(row.llm_scores or []), target),
            "fused": ndcg10(fused, target),
            "W": float(row.fusion_weight or 0.0) if weight is None else weight,
        }
        if beta is not None:
            from ulmrec_align.ranking.fusion import standardise

            trained = np.asarray(row.llm_scores or [], dtype=np.float64) + beta * standardise(
                [by_item[i] for i in row.candidates])
            out[(world, row.user_id)][PRIOR] = ndcg10(trained.tolist(), target)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--label", action="append", default=[], help="NAME=RUN,RUN,... (a group of runs)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--valid-rows", action="append", default=[],
                        help="RUN=FILE: choose that run's W anew on FILE (its LLM's unfused validation "
                        "rankings, `align rank --split valid`) and re-fuse its test rows")
    args = parser.parse_args()
    groups: dict[str, list[Path]] = {}
    for item in args.label:
        name, _, runs = item.partition("=")
        groups[name] = [Path(r) for r in runs.split(",") if r]
    if args.runs:
        groups["runs"] = list(args.runs)
    if not groups:
        raise SystemExit("give runs, or --label NAME=RUN,...")
    valid_files = {Path(k): Path(v) for k, _, v in (item.partition("=") for item in args.valid_rows)}
    pooled: dict[str, dict[tuple[str, int, int], dict[str, float]]] = {}
    for name, runs in groups.items():
        pooled[name] = {}
        earlier: dict[str, int] = {}    # world -> runs of it already in this group (seeds of one world)
        for run in runs:
            pairs = run_pairs(run, valid_files.get(run))
            for (world, user), values in pairs.items():
                pooled[name][(world, earlier.get(world, 0), user)] = values
            for world in {world for world, _ in pairs}:
                earlier[world] = earlier.get(world, 0) + 1
    report: dict[str, object] = {}
    systems = ("LRURec order", "random order", "LLM alone", "fused")
    print(f"{'group':10s} {'pairs':>5s}  " + "  ".join(f"{s:>12s}" for s in systems) + "   W (per run)")
    for name, pairs in pooled.items():
        values = {s: np.array([v[s] for v in pairs.values()]) for s in systems}
        weights = sorted({v["W"] for v in pairs.values()})
        print(f"{name:10s} {len(pairs):5d}  " + "  ".join(f"{values[s].mean():12.4f}" for s in systems)
              + "   " + ", ".join(f"{w:g}" for w in weights))
        comparisons = {f"{b} − {a}": paired_comparison(values[a], values[b], metric="ndcg@10")
                       for b, a in (("fused", "LRURec order"), ("LLM alone", "random order"),
                                    ("LLM alone", "LRURec order"))}
        if all(PRIOR in v for v in pairs.values()):
            trained = np.array([v[PRIOR] for v in pairs.values()])
            print(f"  {PRIOR} (as trained)          {trained.mean():.4f}")
            comparisons[f"{PRIOR} − LRURec order"] = paired_comparison(values["LRURec order"], trained,
                                                                      metric="ndcg@10")
        for label, c in comparisons.items():
            print(f"  {label:26s} {c.difference:+.4f}  95% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}]  "
                  f"p = {c.p_value:.3g}  ({c.wins} wins, {c.losses} losses, {c.n_users} pairs)")
        report[name] = {"pairs": len(pairs), "means": {s: float(values[s].mean()) for s in systems},
                        "weights": weights,
                        "comparisons": {k: c.model_dump() for k, c in comparisons.items()}}
    names = list(pooled)
    for other in names[1:]:
        base = names[0]
        shared = [k for k in pooled[base] if k in pooled[other]]
        if not shared:
            continue
        for system in ("fused", "LLM alone"):
            a = np.array([pooled[base][k][system] for k in shared])
            b = np.array([pooled[other][k][system] for k in shared])
            c = paired_comparison(a, b, metric="ndcg@10")
            print(f"{other} − {base} ({system}, {c.n_users} shared pairs): {c.difference:+.4f}  95% CI "
                  f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]  p = {c.p_value:.3g}")
            report[f"{other} − {base}" + ("" if system == "fused" else f" ({system})")] = c.model_dump()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
