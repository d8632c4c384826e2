"""Benchmark: ULMRec (user index in the prompt, six alignment tasks) against the no-index LlamaRec-style
baseline (next-item task only), same data, model, prompts, training budget and test users; paired comparison
with ``ulmrec eval compare`` (bootstrap CI and sign-flip p-value over the same users).

Run: ``.venv/bin/python bench/align_vs_baseline.py [--data beauty|synthetic] [--minutes 12] [--max-users 2000]
[--rank-users 1000] [--steps 200] [--answer letter|title] [--title-tokens 16]``

Each side is ``bench/align_learns.py`` (which also compares it with a random ordering and the retriever's
order); then both test predictions are compared on the subset (target retrieved) and overall.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("synthetic", "beauty"), default="beauty")
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--max-users", type=int, default=2000)
    parser.add_argument("--rank-users", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200, help="Optimizer steps of each side (equal).")
    parser.add_argument("--answer", choices=("letter", "title"), default="letter",
                        help="next_item answer (align_learns.py --answer; title: the demo's choice).")
    parser.add_argument("--title-tokens", type=int, default=16)
    args = parser.parse_args()
    runs = {}
    world = f"{args.data}-reviews" if args.data == "synthetic" else args.data
    tag = "-title" if args.answer == "title" else ""   # align_learns.py's output folder suffix
    for index in (False, True):
        name = f"bench-align-{world}{'' if index else '-noindex'}{tag}"
        command = [sys.executable, str(ROOT / "bench" / "align_learns.py"), "--data", args.data,
                   "--minutes", str(args.minutes), "--steps", str(args.steps),
                   "--max-users", str(args.max_users),
                   "--rank-users", str(args.rank_users), "--index" if index else "--no-index",
                   "--answer", args.answer, "--title-tokens", str(args.title_tokens)]
        if tag:
            command.append(f"--tag={tag}")   # the demo's loss: the title's tokens, letters for intent
        label = "ULMRec (index)" if index else "baseline (no index)"
        print(f"== {label}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True)
        runs[index] = ROOT / "runs" / name
    a, b = runs[False] / "rank-test.jsonl", runs[True] / "rank-test.jsonl"
    metrics = "ndcg@10,recall@1,recall@5,mrr@10"
    print("== overall (every ranked test user; a target the retriever missed is a miss for both)", flush=True)
    subprocess.run([sys.executable, "-m", "ulmrec_app.main", "eval", "compare", str(a), str(b), "--split",
                    "test", "--metric", metrics, "--out", str(ROOT / "runs" / f"bench-align-{args.data}-"
                                                               "compare-overall.json")], check=True)

    from ulmrec_eval import compare_ranks
    from ulmrec_eval.evaluation import load_predictions, prediction_ranks
    from ulmrec_eval.runtime.io import atomic_write_json

    pa, pb = load_predictions(a, split="test"), load_predictions(b, split="test")
    if [p.user_id for p in pa] != [p.user_id for p in pb]:
        sys.exit("the two runs ranked different users")
    subset = [p.target in (p.candidates or []) for p in pa]
    ra, rb = prediction_ranks(pa)[subset], prediction_ranks(pb)[subset]
    report = compare_ranks(ra, rb, metrics=metrics.split(","), name_a="baseline (no index)",
                           name_b="ULMRec (index)")
    atomic_write_json(ROOT / "runs" / f"bench-align-{args.data}-compare-subset.json", report.model_dump())
    print(f"== subset ({int(sum(subset))} of {len(pa)} users whose target is in the LLM's candidates)")
    for c in report.comparisons:
        print(f"  {c.metric}: baseline {c.mean_a:.4f}  ULMRec {c.mean_b:.4f}  difference {c.difference:+.4f} "
              f"(95% CI {c.ci_low:+.4f} .. {c.ci_high:+.4f}, p = {c.p_value:.4f})")

if __name__ == "__main__":
    main()
