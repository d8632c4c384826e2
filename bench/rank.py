"""Benchmark: ranking throughput of ``logits`` (one forward pass per prompt) against ``generate`` (greedy
generation of the whole ranking, parsed), same model, same prompts, same batch size, in one run.

Run: ``.venv/bin/python bench/rank.py [--model smollm2|FOLDER] [--users 48] [--batch-size 8] [--device cpu]
[--upstream DIR]`` (``--upstream``: a synthetic upstream folder already built, as bench/gpu_check.sh carries)

Prints users/s of each method, their ratio, the share of generated rankings that list every candidate, and
the subset NDCG@10 of both (on the synthetic set's test users); writes ``runs/bench-rank/summary.json``.
On a CPU the prompt's forward pass dominates (40 generated tokens with a KV cache cost about one more
forward pass), so the ratio is modest; on a GPU decoding is latency-bound and the gap is much larger.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _pipeline import ROOT, synthetic_upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="Base model or a folder of `ulmrec align train`.")
    parser.add_argument("--users", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-candidates", type=int, default=20)
    parser.add_argument("--history-items", type=int, default=10)
    parser.add_argument("--title-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-rank")
    parser.add_argument("--upstream", type=Path, default=None,
                        help="An upstream folder already built (default: OUT/upstream, built if missing).")
    args = parser.parse_args()

    import torch

    from ulmrec_align.data.prepared import PreparedDataset
    from ulmrec_align.prompts.config import PromptConfig
    from ulmrec_align.ranking.loading import load_ranking_model
    from ulmrec_align.ranking.run import rank_split
    from ulmrec_align.retrieval.candidates import read_candidates
    from ulmrec_eval import evaluate
    from ulmrec_eval.runtime.io import atomic_write_json
    from ulmrec_eval.schemas import RankedPrediction
    from ulmrec_index.artifact import load_index

    if args.threads:
        torch.set_num_threads(args.threads)
    up = synthetic_upstream(args.upstream or args.out / "upstream")
    dataset = PreparedDataset.load(up.data)
    rows = read_candidates(up.candidates, split="test")
    index = load_index(up.index)
    prompt = PromptConfig(n_candidates=args.n_candidates, history_items=args.history_items,
                          title_tokens=args.title_tokens)
    start = time.perf_counter()
    ranker = load_ranking_model(args.model, device=args.device, prompt=prompt)
    load_seconds = time.perf_counter() - start
    results = {}
    for method in ("logits", "generate"):
        start = time.perf_counter()
        ranked = rank_split(ranker, dataset, rows, index=index, split="test", method=method,  # type: ignore[arg-type]
                            limit=args.users, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        report = evaluate([RankedPrediction.model_validate(r.model_dump()) for r in ranked], ks=(1, 5, 10),
                          retrieved_n=args.n_candidates)
        results[method] = {
            "users": len(ranked), "seconds": round(seconds, 2),
            "users_per_s": round(len(ranked) / seconds, 3),
            "subset_ndcg@10": round(report.scope("subset").metrics["ndcg@10"], 4),
            "subset_users": report.scope("subset").n_users,
            "complete_parse_share": (None if method == "logits"
                                     else round(sum(bool(r.parsed) for r in ranked) / len(ranked), 4)),
        }
        print(f"{method:9s} {results[method]}", flush=True)
    ratio = results["logits"]["users_per_s"] / results["generate"]["users_per_s"]
    summary = {"bench": "rank", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
               "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": args.device,
               "model": str(args.model), "batch_size": args.batch_size, "prompt": prompt.model_dump(),
               "model_load_seconds": round(load_seconds, 1), "results": results,
               "logits_over_generate_users_per_s": round(ratio, 2), "load_avg": os.getloadavg()}
    atomic_write_json(args.out / "summary.json", summary)
    print(f"logits / generate users/s: {ratio:.2f}x; complete generated rankings: "
          f"{results['generate']['complete_parse_share']:.1%}")


if __name__ == "__main__":
    main()
