"""Benchmark: fusion with the retriever (``align rank --fuse-retriever auto``) against the LLM alone and the
retriever's own order, on the users a finished run ranked; paired comparisons over the same users.

Run: ``.venv/bin/python bench/fusion.py [--run runs/demo] [--limit N]`` after ``ulmrec demo`` or
``ulmrec experiment ablate`` (any run with data, index, retrieve, train and rank stages, e.g.
``runs/demo-full-s0``).

It ranks the run's first ``--limit`` validation users to choose W (NDCG@10 over the grid of
``ulmrec_align.ranking.fusion.WEIGHT_GRID``), then the same test users as the run's rank stage, and prints
NDCG@10 / Recall@1 of the three systems with ``ulmrec eval compare`` differences (bootstrap 95 % CI,
sign-flip p-value). Results: ``runs/bench-fusion-<run>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ulmrec_app.pipeline.layout import RunLayout, default_ranked_n

ROOT = Path(__file__).resolve().parents[1]


def ulmrec(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ulmrec_app.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"ulmrec {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="Users ranked (valid for W, then test); default: as many as the run's rank stage.",
    )
    args = parser.parse_args()
    run: Path = args.run
    out = ROOT / "runs" / f"bench-fusion-{run.name}"
    out.mkdir(parents=True, exist_ok=True)
    layout = RunLayout(run)
    candidates = layout.candidates
    llm = layout.predictions
    fused = out / "test-fused.jsonl"
    if args.limit is None:
        args.limit = sum(
            1 for line in llm.read_text().splitlines() if '"split":"test"' in line.replace(" ", "")
        )
    started = time.perf_counter()
    proc = ulmrec(
        "align",
        "rank",
        "--model",
        layout.model,
        "--data",
        layout.dataset,
        "--index",
        layout.index,
        "--candidates",
        candidates,
        "--split",
        "test",
        "--limit",
        str(args.limit),
        "--fuse-retriever",
        "auto",
        "--out",
        fused,
        "--force",
        "--no-progress",
    )
    seconds = time.perf_counter() - started
    choice = next(line for line in proc.stderr.splitlines() if line.startswith("fused with the retriever"))
    print(choice)

    from ulmrec_app.pipeline.demo import retriever_predictions
    from ulmrec_eval.evaluation import load_predictions

    ranked = load_predictions(fused, split="test")
    n = ranked[0].retrieved_n or default_ranked_n()
    order = retriever_predictions(candidates, fused, out / "retriever-order.jsonl", split="test", n=n)
    pairs = {"fused − LRURec": (order, fused), "fused − LLM": (llm, fused), "LLM − LRURec": (order, llm)}
    summary: dict[str, object] = {
        "run": str(run),
        "users": len(ranked),
        "choice": choice,
        "rank_seconds": round(seconds, 1),
        "comparisons": {},
    }
    print(f"{len(ranked)} test users, N = {n} candidates each; paired over the same users")
    print(f"{'':<16} {'A':>8} {'B':>8} {'B − A':>8} {'95% CI':>19} {'p':>7}   (NDCG@10)")
    for label, (a, b) in pairs.items():
        report_path = out / f"compare-{label.replace(' − ', '-vs-').replace(' ', '')}.json"
        ulmrec(
            "eval", "compare", a, b, "--split", "test", "--metric", "ndcg@10,recall@1", "--out", report_path
        )
        report = json.loads(report_path.read_text())
        c = next(x for x in report["comparisons"] if x["metric"] == "ndcg@10")
        print(
            f"{label:<16} {c['mean_a']:>8.4f} {c['mean_b']:>8.4f} {c['difference']:>+8.4f} "
            f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] {c['p_value']:>7.3g}"
        )
        summary["comparisons"][label] = report["comparisons"]  # type: ignore[index]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out / 'summary.json'} (align rank took {seconds:.0f}s for valid + test)")


if __name__ == "__main__":
    main()
