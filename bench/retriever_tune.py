"""Benchmark: ``ulmrec retrieve tune`` on Amazon Beauty over several seeds, against LlamaRec's LRURec.

Run: ``.venv/bin/python bench/retriever_tune.py [--seeds 0,1,2] [--max-minutes 40] [--parallel 2]``.

Every setting is selected on validation only. For each seed ``s`` the script runs the real command

    ulmrec retrieve tune --data runs/bench-retriever/data --out runs/bench-retriever-tune/seed-s
                         --config base-s.json --seed s --max-minutes M

whose trial 0 is LlamaRec's published LRURec setting (dropout 0.2, lr 1e-3, weight decay 0.01, width 64,
batch 64), with training seed ``42 + s``, early stopping on validation NDCG@10 with patience ``--patience``
and one torch thread per process; the search order of the other grid points is drawn from ``s``. The test
split is evaluated once, for each seed's selected model. The script then prints every seed's choice and test
figures, their mean, standard deviation and range, and LlamaRec's figures (arXiv 2311.02089, Table 2), and
says for each figure whether the published value lies within the seeds' range.

``--report-only`` prints the table from finished folders without training. A summary goes to
``runs/bench/retriever-tune.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from retriever import BEAUTY, PUBLISHED, ROOT, prepare

FIGURES = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "mrr@5", "mrr@10")
#: LlamaRec's LRURec training settings (its published code's defaults), the search's trial 0.
LLAMAREC_SETTINGS = {"dropout": 0.2, "lr": 1e-3, "weight_decay": 0.01, "hidden_size": 64}


def base_config(seed: int, patience: int) -> dict[str, Any]:
    """The search's trial 0 for ``seed``: LlamaRec's settings, one thread, training seed ``42 + seed``."""
    from ulmrec_align.retrieval.config import RetrieverConfig

    data = RetrieverConfig().model_dump(mode="json")
    data["model"].update(dropout=LLAMAREC_SETTINGS["dropout"], lru_dropout=LLAMAREC_SETTINGS["dropout"],
                         hidden_size=LLAMAREC_SETTINGS["hidden_size"])
    data["train"].update(lr=LLAMAREC_SETTINGS["lr"], weight_decay=LLAMAREC_SETTINGS["weight_decay"],
                         seed=42 + seed, patience=patience, num_threads=1)
    return RetrieverConfig.model_validate(data).model_dump(mode="json")


def launch(seed: int, data_dir: Path, root: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    config_path = root / f"base-{seed}.json"
    config_path.write_text(json.dumps(base_config(seed, args.patience), indent=1) + "\n", encoding="utf-8")
    out = root / f"seed-{seed}"
    command = [str(Path(sys.executable).parent / "ulmrec"), "retrieve", "tune", "--data", str(data_dir),
               "--out", str(out), "--config", str(config_path), "--seed", str(seed),
               "--max-minutes", str(args.max_minutes), "--force"]
    log = (root / f"seed-{seed}.log").open("wb")
    print(f"seed {seed}: {' '.join(command)}  (log: {log.name})", flush=True)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_all(seeds: list[int], data_dir: Path, root: Path, args: argparse.Namespace) -> None:
    pending = list(seeds)
    running: dict[int, subprocess.Popen[bytes]] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            running[seed] = launch(seed, data_dir, root, args)
        time.sleep(5)
        for seed, proc in list(running.items()):
            if proc.poll() is not None:
                del running[seed]
                status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"seed {seed}: {status}", flush=True)


def summarise(seeds: list[int], root: Path) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        folder = root / f"seed-{seed}"
        if not (folder / "metrics.json").is_file():
            print(f"seed {seed}: no finished run in {folder}", file=sys.stderr)
            continue
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        tune = json.loads((folder / "tune.json").read_text(encoding="utf-8"))
        best = next(t for t in tune["trials"] if t["index"] == tune["best"])
        rows[seed] = {"settings": best["settings"], "valid_ndcg@10": best["valid_score"],
                      "best_epoch": best["best_epoch"], "trials": len(tune["trials"]),
                      "search_seconds": sum(t["seconds"] for t in tune["trials"]),
                      "trial_log": [{k: t[k] for k in ("index", "settings", "valid_score", "best_epoch",
                                                       "epochs_run", "stop_reason", "seconds")}
                                    for t in tune["trials"]],
                      "test": {k: metrics["test"]["metrics"][k] for k in FIGURES}}
    return rows


def print_report(rows: dict[int, dict[str, Any]]) -> dict[str, Any]:
    print()
    for seed, row in rows.items():
        print(f"seed {seed}: {row['trials']} trials in {row['search_seconds'] / 60:.1f} min; selected "
              f"{row['settings']} (valid NDCG@10 {row['valid_ndcg@10']:.4f}, best epoch {row['best_epoch']})")
        for trial in row["trial_log"]:
            score = "-" if trial["valid_score"] is None else f"{trial['valid_score']:.4f}"
            print(f"    trial {trial['index']:2d} {trial['settings']}: valid NDCG@10 {score}, best epoch "
                  f"{trial['best_epoch']} of {trial['epochs_run']} ({trial['stop_reason']}), "
                  f"{trial['seconds'] / 60:.1f} min")
    header = f"{'test figure':<12}" + "".join(f"{'seed ' + str(s):>10}" for s in rows)
    header += f"{'mean':>10}{'std':>10}{'LlamaRec':>10}{'mean/pub':>10}  published within seeds' range?"
    print()
    print(header)
    print("-" * len(header))
    spread: dict[str, Any] = {}
    for figure in FIGURES:
        values = [row["test"][figure] for row in rows.values()]
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        published = PUBLISHED.get(figure)
        line = f"{figure:<12}" + "".join(f"{v:>10.4f}" for v in values) + f"{mean:>10.4f}{std:>10.4f}"
        if published is None:
            line += f"{'-':>10}{'-':>10}"
            verdict = "-"
        else:
            inside = min(values) <= published <= max(values)
            line += f"{published:>10.4f}{mean / published:>10.3f}"
            verdict = ("yes: no margin beyond the seeds' spread" if inside else
                       "no: every seed above" if min(values) > published else "no: every seed below")
        print(f"{line}  {verdict}")
        spread[figure] = {"values": values, "mean": mean, "std": std, "min": min(values), "max": max(values),
                          "published": published, "verdict": verdict}
    return spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--max-minutes", type=float, default=40.0, help="search budget per seed (minutes)")
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience of every trial")
    parser.add_argument("--parallel", type=int, default=2, help="seeds run at once (one torch thread each)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-retriever-tune")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "runs" / "bench-retriever" / "data")
    parser.add_argument("--report-only", action="store_true",
                        help="summarise finished folders, train nothing")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not (BEAUTY / "beauty.inter").is_file():
        sys.exit(f"Beauty data not found at {BEAUTY} (set ULMREC_SHARED_DATA)")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_before = os.getloadavg()
    if not args.report_only:
        dataset = prepare(args.data_dir)
        print(f"dataset {dataset.manifest.name}: split {dataset.manifest.split_sha256[:12]}…; "
              f"{len(seeds)} seeds, {args.max_minutes} min each, {args.parallel} at once", flush=True)
        run_all(seeds, args.data_dir, args.out, args)
    rows = summarise(seeds, args.out)
    if not rows:
        sys.exit("no finished seed to report")
    spread = print_report(rows)
    load_after = os.getloadavg()
    wall = (time.monotonic() - started) / 60
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; wall {wall:.1f} min")
    from ulmrec_eval.runtime.io import atomic_write_json

    atomic_write_json(ROOT / "runs" / "bench" / "retriever-tune.json",
                      {"date": time.strftime("%Y-%m-%d"), "seeds": {str(k): v for k, v in rows.items()},
                       "spread": spread, "max_minutes": args.max_minutes, "patience": args.patience,
                       "parallel": args.parallel, "base": LLAMAREC_SETTINGS})


if __name__ == "__main__":
    main()
