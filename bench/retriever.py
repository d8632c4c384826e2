"""Benchmark: the LRURec retriever on Amazon Beauty against LlamaRec's published LRURec figures.

Run: ``.venv/bin/python bench/retriever.py [--max-minutes 20] [--threads 1]`` (``--help`` for the rest).

1. Prepares ../shared/data/amazon-beauty (RecBole atomic files) with ``prepare_dataset(source="recbole")``
   into ``runs/bench-retriever/data`` (reused when present and its split hash matches).
2. Trains LRURec on the train split on the CPU with the given time budget (no epoch is started that is
   expected to end past it) and early stopping on validation Recall@10, and writes the usual run folder
   (model, candidates, metrics) to ``runs/bench-retriever/run``.
3. Prints the test metrics (full ranking over all 12,086 items, input items masked, ties pessimistic) next to
   LlamaRec's published LRURec retriever figures on Beauty (arXiv 2311.02089, Table 2) with their ratio, the
   time per epoch and the epoch of the best validation score, and the load of the machine while it ran.

Goal: every ratio >= 1, Recall@20 >= 0.128, within 20 minutes of training on this CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEAUTY = Path(os.environ.get("ULMREC_SHARED_DATA", ROOT.parent / "shared" / "data")) / "amazon-beauty"

#: LlamaRec (arXiv 2311.02089), Table 2, LRURec retriever on Beauty.
PUBLISHED = {"recall@5": 0.0614, "recall@10": 0.0916, "ndcg@5": 0.0435, "ndcg@10": 0.0533,
             "mrr@5": 0.0376, "mrr@10": 0.0417}
RECALL20_GOAL = 0.128


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def prepare(out: Path) -> Any:
    from ulmrec_align.data.pipeline import prepare_dataset
    from ulmrec_align.data.prepared import PreparedDataset

    if (out / "manifest.json").is_file():
        try:
            return PreparedDataset.load(out)
        except Exception as exc:  # a stale or foreign folder: rebuild it
            print(f"rebuilding {out}: {exc}", file=sys.stderr)
    return prepare_dataset(source="recbole", path=BEAUTY, out=out, force=True)  # replaces a stale folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-minutes", type=float, default=20.0, help="training time budget (minutes)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a 2-core machine shared with other jobs)")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=None,
                        help="embedding/FFN and LRU dropout (default: RetrieverConfig's, LlamaRec's 0.2)")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-retriever")
    parser.add_argument("--fresh", action="store_true", help="delete a previous run folder first")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args()
    if not (BEAUTY / "beauty.inter").is_file():
        sys.exit(f"Beauty data not found at {BEAUTY} (set ULMREC_SHARED_DATA)")

    import torch

    from ulmrec_align.retrieval.api import train_retriever
    from ulmrec_align.retrieval.config import LRURecConfig, RetrieverConfig, TrainConfig
    from ulmrec_eval.runtime.io import atomic_write_json

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    dataset = prepare(args.out / "data")
    prep_seconds = time.monotonic() - started
    print(f"data: {dataset.n_users} users, {dataset.n_items} items, "
          f"{sum(len(s.items) for s in dataset.sequences)} interactions ({prep_seconds:.1f}s)")
    config = RetrieverConfig(
        model=LRURecConfig() if args.dropout is None else LRURecConfig(dropout=args.dropout,
                                                                       lru_dropout=args.dropout),
        train=TrainConfig(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          weight_decay=args.weight_decay, patience=args.patience,
                          max_minutes=args.max_minutes, num_threads=args.threads),
    )
    run_dir = args.out / "run"
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    resume = (run_dir / "checkpoint.safetensors").is_file()
    load_before = _load_avg()
    run = train_retriever(dataset, run_dir, config, resume=resume, show_progress=args.progress,
                          epoch_log=lambda line: print(line, flush=True))
    load_after = _load_avg()
    training = run.metrics["training"]
    test = run.metrics["test"]["metrics"]
    valid = run.metrics["valid"]["metrics"]

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); load average (1/5/15 min) "
          f"before {load_before}, after {load_after}")
    print(f"training: {training['epochs_run']} epochs, {training['steps']} steps, {training['seconds']:.0f}s "
          f"({training['seconds_per_epoch']:.1f}s/epoch incl. validation), best validation "
          f"recall@10 {training['best_valid']['recall@10']:.4f} at epoch {training['best_epoch']}, "
          f"stop: {training['stop_reason']}; evaluation + candidates {run.metrics['eval_seconds']:.0f}s")
    print(f"\n{'test metric':<12} {'ours':>8} {'LlamaRec':>9} {'ratio':>7}")
    rows = []
    for key, published in PUBLISHED.items():
        ratio = test[key] / published
        rows.append({"metric": key, "ours": test[key], "published": published, "ratio": ratio})
        print(f"{key:<12} {test[key]:>8.4f} {published:>9.4f} {ratio:>7.3f}")
    r20 = test["recall@20"]
    print(f"{'recall@20':<12} {r20:>8.4f} {RECALL20_GOAL:>9.4f} {r20 / RECALL20_GOAL:>7.3f}   (goal)")
    print(f"target in top-20: test {run.metrics['test']['target_in_candidates']:.4f}, "
          f"valid {run.metrics['valid']['target_in_candidates']:.4f}; "
          f"valid recall@10 {valid['recall@10']:.4f}")
    per_epoch = [(h["epoch"], h.get("valid", {}).get("recall@10"), h["elapsed_seconds"])
                 for h in training["history"]]
    print("epochs (epoch, valid recall@10, elapsed s): "
          + ", ".join(f"({e}, {r:.4f}, {s:.0f})" for e, r, s in per_epoch if r is not None))
    summary = {"test": test, "valid": valid, "comparison": rows, "training": training,
               "load_average_before": load_before, "load_average_after": load_after,
               "threads": torch.get_num_threads(), "config": config.model_dump(mode="json")}
    atomic_write_json(args.out / "summary.json", summary)
    print(f"\nwrote {args.out / 'summary.json'} and the run folder {run_dir}")


if __name__ == "__main__":
    main()
