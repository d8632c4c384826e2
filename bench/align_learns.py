"""Benchmark: does the tuned LLM learn to rank? ULMRec on a dataset with strong sequential signal (the
built-in synthetic set by default, or a sample of the real Amazon Beauty), end to end with the real commands:

    upstream (data → users → index → LRURec candidates) → ulmrec align build → ulmrec align train (a time
    budget on CPU) → ulmrec align rank (test) → paired comparisons on the subset whose target was retrieved:
    tuned LLM vs a random ordering of the same candidates, and vs the retriever's own order.

Run: ``.venv/bin/python bench/align_learns.py [--minutes 30] [--index/--no-index] [--data synthetic|beauty]
[--shuffled] [--permutations K] [--reuse]`` (``--shuffled`` also ranks the same candidates in a random letter
order, which separates what the model learned from a bias towards early letters, which follow the retriever's
order; ``--permutations K`` also ranks with ``ulmrec align rank --permutations K``, the mean over K letter
orders; ``--reuse`` keeps the samples, the tuned model and every ranking file already in ``--out``;
``--answer title`` tunes next_item to write the target's title and ranks by title likelihood minus the title
prior, and also ranks with the prior kept and with the untuned base model; with ``--loss choices`` it trains
on a cross-entropy over each sample's pool of titles instead of the title's tokens); ``--answer relevance
--loss relevance`` trains the relevance head on the retriever's pools and ranks fused with the retriever
(``--fuse-retriever auto``), beside the untuned base model fused the same way, and reports the LLM alone too).

Settings are fixed up front (never chosen on test): prompts of ``--n-candidates`` (10) candidates, the last 6
history titles cut to 16 tokens (12 lost the product type of 60 of 150 demo items), next_item on every
training prefix, the other tasks at weight 0.5;
SmolLM2-135M-Instruct + LoRA (r=8, alpha=32, q/v) with the given learning rate and ``--loss``, ``--steps``
optimizer steps (equal across variants; ``--minutes`` is a safety budget); model selection by validation
NDCG@10 of calibrated scores on shuffled letters only; test ranking removes the stored letter prior.
Writes ``runs/bench-align-<world>[-noindex|-permutedS]/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _pipeline import ROOT, beauty_upstream, synthetic_upstream, ulmrec


def write_shuffled(source: Path, target: Path, *, seed: int, n: int) -> None:
    """The test rows of ``source`` with each user's first ``n`` candidates (the ones the LLM ranks; scores
    along) in a seeded random order."""
    from ulmrec_align.retrieval.candidates import read_candidates
    from ulmrec_eval.runtime.io import atomic_write_jsonl

    rng = np.random.default_rng(seed)
    rows = []
    for row in sorted(read_candidates(source, split="test").values(), key=lambda r: r.user_id):
        order = rng.permutation(min(n, len(row.candidates)))
        rows.append(row.model_copy(update={"candidates": [row.candidates[i] for i in order],
                                           "scores": [row.scores[i] for i in order],
                                           "target_in_candidates": row.target in row.candidates[:n]}))
    atomic_write_jsonl(target, rows)


def device_args(device: str) -> list[str]:
    """``--device`` for train and rank; on CUDA without NF4 (bf16 weights: a 135M model fits)."""
    return ["--device", device, "--quantization", "none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("synthetic", "beauty"), default="synthetic")
    parser.add_argument("--minutes", type=float, default=30.0, help="Training time budget (a safety cap).")
    parser.add_argument("--steps", type=int, default=200, help="Optimizer steps (equal across variants).")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-steps", type=int, default=None,
                        help="Validate every N steps (default: a fifth of --steps).")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rank-batch-size", type=int, default=8, help="Prompts per forward pass (ranking).")
    parser.add_argument("--n-candidates", type=int, default=10)
    parser.add_argument("--lora-targets", default="q_proj,v_proj", help="q_proj,v_proj (paper) | all-linear")
    parser.add_argument("--tag", default="", help="Suffix of the output folder (another setting).")
    parser.add_argument("--loss", choices=("letters", "choices", "tokens", "relevance"), default="letters")
    parser.add_argument("--answer", choices=("letter", "title", "relevance"), default="letter",
                        help="next_item answered by letter (the paper) or by title (ranked by title "
                        "likelihood minus the title prior; also ranks with the prior kept and untuned)")
    parser.add_argument("--title-tokens", type=int, default=16)
    parser.add_argument("--negatives", choices=("random", "retriever"), default="random")
    parser.add_argument("--negative-draws", type=int, default=1,
                        help="Random negatives redrawn for each epoch, up to this many draws (align build "
                        "--negative-draws; random negatives only).")
    parser.add_argument("--signal", choices=("reviews", "none"), default="reviews")
    parser.add_argument("--index-permute", type=int, default=None,
                        help="Control: codes shuffled among users.")
    parser.add_argument("--index-random", type=int, default=None,
                        help="Control: every user a random distinct code.")
    parser.add_argument("--index", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--max-users", type=int, default=None, help="Users whose samples are built.")
    parser.add_argument("--rank-users", type=int, default=None, help="Test users ranked (first N).")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--device", default="cpu",
                        help="cpu | cuda (on CUDA: bf16 weights, no NF4, no activation recompute)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--shuffled", action="store_true",
                        help="Also rank the same candidates in a seeded random letter order.")
    parser.add_argument("--permutations", type=int, default=1,
                        help="Also rank with the mean over K letter orders (align rank --permutations K).")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse the samples, tuned model and rankings of a previous run in --out.")
    args = parser.parse_args()

    from ulmrec_align.retrieval.candidates import read_candidates
    from ulmrec_eval import compare_ranks
    from ulmrec_eval.evaluation import load_predictions, prediction_ranks
    from ulmrec_eval.metrics import compute_metrics
    from ulmrec_eval.runtime.io import atomic_write_json

    variant = "" if args.index else "-noindex"
    variant += "" if args.index_permute is None else f"-permuted{args.index_permute}"
    variant += "" if args.index_random is None else f"-random{args.index_random}"
    world = f"{args.data}-{args.signal}" if args.data == "synthetic" else args.data
    out = args.out or ROOT / "runs" / f"bench-align-{world}{variant}{args.tag}"
    up_root = out.parent / f"bench-align-{world}-upstream"
    upstream = (synthetic_upstream(up_root, signal=args.signal) if args.data == "synthetic"
                else beauty_upstream(up_root))
    n = args.n_candidates
    timings: dict[str, float] = {}
    samples, tuned, ranked = out / "align", out / "train", out / "rank-test.jsonl"
    build = ["align", "build", "--data", upstream.data, "--candidates", upstream.candidates, "--out", samples,
             "--index", upstream.index if args.index else "none", "--n-candidates", n, "--history-items", 6,
             "--title-tokens", args.title_tokens, "--text-tokens", 40, "--answer", args.answer,
             "--valid-users", 60, "--model", args.model, "--force",
             "--negatives", args.negatives, "--no-progress",
             *[x for t in ("index_to_pref", "pref_to_index", "history_to_index", "rating", "intent")
               for x in ("--task-weight", f"{t}=0.5")]]
    if args.negatives == "retriever":
        build += ["--retriever", upstream.candidates.parent]
    elif args.negative_draws > 1:
        build += ["--negative-draws", args.negative_draws]
    if args.index_permute is not None:
        build += ["--index-permute", args.index_permute]
    if args.index_random is not None:
        build += ["--index-random", args.index_random]
    if args.max_users:
        build += ["--max-users", args.max_users]
    if not (args.reuse and (tuned / "train_manifest.json").is_file()):
        timings["align_build_s"] = ulmrec(*build)
        timings["align_train_s"] = ulmrec(
            "align", "train", "--samples", samples, "--model", args.model, "--out", tuned, "--max-minutes",
            args.minutes, "--max-steps", args.steps, "--lr", args.lr, "--batch-size", args.batch_size,
            "--eval-steps", args.eval_steps or max(1, args.steps // 5),
            "--save-steps", args.eval_steps or max(1, args.steps // 5),
            "--valid-users", 60,
            "--patience", 1000, "--loss", args.loss, "--lora-targets", args.lora_targets, "--force",
            "--no-progress", *device_args(args.device), "--gradient-checkpointing", "off")
    # The letters follow the retriever's order; a second pass with the same candidates in a seeded random
    # order shows how much of the ranking is the model's own and how much is a bias towards early letters.
    shuffled = out / "candidates-test-shuffled.jsonl"
    passes = [("align_rank_s", upstream.candidates, ranked)]
    titles = args.answer == "title"
    relevance = args.answer == "relevance"
    raw_file, untuned_file = out / "rank-test-raw.jsonl", out / "rank-test-untuned.jsonl"
    if relevance:   # one score per candidate, fused with the retriever; the untuned base model beside it
        args.shuffled, args.permutations = False, 1
        passes.append(("align_rank_untuned_s", upstream.candidates, untuned_file))
    if titles:    # no letters: no letter order to shuffle; instead the title prior kept, and the base model
        args.shuffled, args.permutations = False, 1
        passes += [("align_rank_raw_s", upstream.candidates, raw_file),
                   ("align_rank_untuned_s", upstream.candidates, untuned_file)]
    if args.shuffled:
        write_shuffled(upstream.candidates, shuffled, seed=0, n=n)
        passes.append(("align_rank_shuffled_s", shuffled, out / "rank-test-shuffled.jsonl"))
    orders_file = out / f"rank-test-orders{args.permutations}.jsonl"
    if args.permutations > 1:
        passes.append((f"align_rank_orders{args.permutations}_s", upstream.candidates, orders_file))
    for name, candidates, target in passes:
        if args.reuse and target.is_file() and target.stat().st_mtime > (tuned / "train_manifest.json").stat(
                ).st_mtime:
            continue
        model: Path | str = args.model if target == untuned_file else tuned
        rank = ["align", "rank", "--model", model, "--data", upstream.data, "--candidates", candidates,
                "--index", upstream.index if args.index else "none", "--split", "test", "--out", target,
                "--force", "--no-progress", "--batch-size", args.rank_batch_size, *device_args(args.device)]
        if args.rank_users:
            rank += ["--limit", args.rank_users]
        if target == orders_file:
            rank += ["--permutations", args.permutations]
        if target == raw_file:
            rank += ["--calibration", "none"]
        if target == untuned_file:
            rank += ["--answer", args.answer, "--any-index"]
        if relevance:
            rank += ["--fuse-retriever", "auto"]
        if args.index_permute is not None:
            rank += ["--index-permute", args.index_permute]
        if args.index_random is not None:
            rank += ["--index-random", args.index_random]
        timings[name] = ulmrec(*rank)

    predictions = load_predictions(ranked, split="test")
    llm = prediction_ranks(predictions)
    rows = read_candidates(upstream.candidates, split="test")
    rng = np.random.default_rng(0)
    retriever, random_order = [], []
    for p in predictions:
        row = rows[("test", int(p.user_id))]
        pool = row.candidates[:n]
        retriever.append(pool.index(row.target) + 1 if row.target in pool else 0)
        random_order.append(int(rng.permutation(len(pool))[pool.index(row.target)]) + 1
                            if row.target in pool else 0)
    subset = np.asarray([r > 0 for r in retriever])
    systems = {"random order": np.asarray(random_order), "retriever order": np.asarray(retriever),
               "tuned LLM": llm}
    if args.shuffled:
        systems["tuned LLM, shuffled letters"] = prediction_ranks(
            load_predictions(out / "rank-test-shuffled.jsonl", split="test"))
    if titles:
        systems["tuned LLM, title prior kept"] = prediction_ranks(load_predictions(raw_file, split="test"))
        systems["untuned LLM (title likelihood, prior removed)"] = prediction_ranks(
            load_predictions(untuned_file, split="test"))
    orders_name = f"tuned LLM, mean of {args.permutations} letter orders"
    if args.permutations > 1:
        systems[orders_name] = prediction_ranks(load_predictions(orders_file, split="test"))
    if relevance:   # the fused rows keep the LLM's own scores: the LLM alone, tuned and untuned
        for name, path in (("tuned LLM alone", ranked), ("untuned LLM alone", untuned_file)):
            rows_ = load_predictions(path, split="test")
            own = [p.model_copy(update={"scores": json.loads(line).get("llm_scores") or p.scores})
                   for p, line in zip(rows_, Path(path).read_text().splitlines(), strict=True)]
            systems[name] = prediction_ranks(own)
        systems["untuned LLM, fused"] = prediction_ranks(load_predictions(untuned_file, split="test"))
    metrics = {name: compute_metrics(r[subset], (1, 5, 10)) for name, r in systems.items()}
    comparisons = {
        f"tuned LLM vs {name}": compare_ranks(systems[name][subset], llm[subset],
                                              metrics=("ndcg@10", "recall@1"), name_a=name,
                                              name_b="tuned LLM").model_dump()
        for name in ("random order", "retriever order")}
    if args.shuffled:
        comparisons["tuned LLM, shuffled letters vs random order"] = compare_ranks(
            systems["random order"][subset], systems["tuned LLM, shuffled letters"][subset],
            metrics=("ndcg@10", "recall@1"), name_a="random order",
            name_b="tuned LLM, shuffled letters").model_dump()
    if titles:
        comparisons["tuned LLM vs untuned LLM"] = compare_ranks(
            systems["untuned LLM (title likelihood, prior removed)"][subset], llm[subset],
            metrics=("ndcg@10", "recall@1"), name_a="untuned LLM", name_b="tuned LLM").model_dump()
    if relevance:
        comparisons["tuned LLM alone vs random order"] = compare_ranks(
            systems["random order"][subset], systems["tuned LLM alone"][subset],
            metrics=("ndcg@10", "recall@1"), name_a="random order", name_b="tuned LLM alone").model_dump()
        comparisons["tuned LLM vs untuned LLM, fused"] = compare_ranks(
            systems["untuned LLM, fused"][subset], llm[subset], metrics=("ndcg@10", "recall@1"),
            name_a="untuned LLM, fused", name_b="tuned LLM").model_dump()
    if args.permutations > 1:
        for name in ("random order", "retriever order", "tuned LLM"):
            comparisons[f"{orders_name} vs {name}"] = compare_ranks(
                systems[name][subset], systems[orders_name][subset], metrics=("ndcg@10", "recall@1"),
                name_a=name, name_b=orders_name).model_dump()
    manifest = json.loads((tuned / "train_manifest.json").read_text())
    summary = {
        "bench": "align_learns", "date": time.strftime("%Y-%m-%d"), "data": args.data, "index": args.index,
        "machine": platform.machine(), "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
        "model": args.model, "device": args.device, "lr": args.lr, "batch_size": args.batch_size,
        "minutes": args.minutes, "steps": args.steps, "loss": args.loss, "negatives": args.negatives,
        "negative_draws": args.negative_draws,
        "answer": args.answer, "title_tokens": args.title_tokens,
        "signal": args.signal, "index_permute": args.index_permute, "index_random": args.index_random,
        "lora_targets": args.lora_targets,
        "n_candidates": n, "timings": timings,
        "train": {k: manifest.get(k) for k in ("steps", "samples_seen", "tokens_seen", "best_step",
                                                "best_ndcg_at_10", "stop_reason", "train_samples",
                                                "elapsed_seconds")},
        "curve": manifest.get("curve"), "validation": manifest.get("history"),
        "test_users": len(predictions), "subset_users": int(subset.sum()),
        "subset_metrics": metrics, "comparisons": comparisons,
    }
    atomic_write_json(out / "summary.json", summary)
    print(f"trained {manifest.get('steps')} steps, {manifest.get('samples_seen')} samples, "
          f"{manifest.get('tokens_seen')} tokens in {manifest.get('elapsed_seconds', 0) / 60:.1f} min "
          f"({manifest.get('stop_reason')}; best validation NDCG@10 "
          f"{manifest.get('best_ndcg_at_10')})")
    print(f"subset of {int(subset.sum())}/{len(predictions)} test users (target in the top {n}):")
    for name, m in metrics.items():
        print(f"  {name:44s} NDCG@10 {m['ndcg@10']:.4f}  Recall@1 {m['recall@1']:.4f}  "
              f"Recall@5 {m['recall@5']:.4f}")
    for name, report in comparisons.items():
        c = report["comparisons"][0]
        print(f"  {name}: NDCG@10 difference {c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. "
              f"{c['ci_high']:+.4f}, p = {c['p_value']:.4f}, wins/losses {c['wins']}/{c['losses']})")


if __name__ == "__main__":
    main()
