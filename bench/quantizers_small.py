"""Quantizers at small and full scale: rqvae (defaults, and its pre-issue-9 schedule), rqkmeans and faiss on
the same vectors, in one run.

    .venv/bin/python bench/quantizers_small.py --n 1000 --levels 3 --codebook-size 32
    .venv/bin/python bench/quantizers_small.py --n 22332 --levels 4 --codebook-size 256 --only rqvae,rqkmeans

Vectors (``--data``):
* ``beauty`` (default): real users — the MiniLM embedding (all-MiniLM-L6-v2, 384-d, unit norm) of each Amazon
  Beauty user's preference sentence from ../shared/data/amazon-beauty/beauty.user, read from the embedding
  cache that bench/index.py fills (embedded here once if absent: ~20 min of CPU under load), then a seeded
  random subset of ``--n`` users;
* ``synthetic``: clustered vectors, 384-d, unit norm (``--n`` points around ``n/20`` centres, noise 0.5).

Per quantizer: fit time (wall and process CPU), raw collisions (users sharing a full code before repair), the
collisions left after :func:`ulmrec_index.uniqueness.make_unique_for_quantizer` and whether it needed an extra
level, the fewest codes used on any level, and the relative reconstruction error
``mean ||x - decode(encode(x))||² / mean ||x - mean(x)||²``. ``rqvae (old schedule)`` is the rqvae default
before issue 9 (``min_steps=0``: 5 epochs of batch 2048, so 5 steps at N <= 2048).
A JSON summary goes to runs/bench/quantizers-<data>-<n>-<L>x<K>.json. Timings on the shared 2-core machine
are inflated by other load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

QUANTIZERS: dict[str, dict[str, Any]] = {
    "rqvae": {"kind": "rqvae"},
    "rqvae-old": {"kind": "rqvae", "min_steps": 0},
    "rqkmeans": {"kind": "rqkmeans"},
    "faiss": {"kind": "faiss"},
}
LABELS = {"rqvae": "rqvae (defaults)", "rqvae-old": "rqvae (old schedule)", "rqkmeans": "rqkmeans (defaults)",
          "faiss": "faiss RQ (beam 5)"}


def beauty_vectors(cache_dir: Path) -> np.ndarray:
    from index import DATA, read_beauty_users

    from ulmrec_index.encoders import TextEncoder

    users = read_beauty_users(DATA / "beauty.user")
    texts = [u["texts"][0] if u["texts"] else "" for u in users]
    return TextEncoder(None, cache_dir=cache_dir, batch_size=128).encode(texts)


def synthetic_vectors(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 20), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim)) / np.sqrt(dim) * 8
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def run(name: str, x: torch.Tensor, levels: int, k: int, seed: int) -> dict[str, Any]:
    from ulmrec_index.quantizers import create_quantizer
    from ulmrec_index.uniqueness import collision_count, make_unique_for_quantizer

    torch.manual_seed(seed)
    q = create_quantizer({**QUANTIZERS[name], "levels": levels, "codebook_size": k, "seed": seed})
    wall, cpu = time.perf_counter(), time.process_time()
    report = q.fit(x)
    if isinstance(q, torch.nn.Module):
        q.eval()
    fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    with torch.no_grad():
        codes = q.encode(x)
        err = float((q.decode(codes) - x).pow(2).sum(1).mean())
        repaired = make_unique_for_quantizer(q, x, codes)
    spread = float((x - x.mean(0)).pow(2).sum(1).mean())
    return {
        "quantizer": LABELS[name], "fit_s": round(fit_wall, 1), "fit_cpu_s": round(fit_cpu, 1),
        "raw_collisions": collision_count(codes), "after_repair": collision_count(repaired.codes),
        "extra_level": bool(repaired.extra_level_used),
        "min_codes_used": min(int(torch.unique(codes[:, level]).numel()) for level in range(levels)),
        "rel_error": round(err / spread, 3),
        "schedule": {key: report.stats[key] for key in ("epochs", "batch_size") if key in report.stats},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["beauty", "synthetic"], default="beauty")
    parser.add_argument("--n", type=int, default=1000, help="users (a seeded random subset of Beauty)")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=",".join(QUANTIZERS), help="comma-separated subset of "
                        f"{', '.join(QUANTIZERS)}")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "ulmrec-index" / "embeddings")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    if args.data == "beauty":
        full = beauty_vectors(args.cache_dir)
        rows = np.random.default_rng(args.seed).permutation(len(full))[: args.n]
        x = torch.from_numpy(np.ascontiguousarray(full[np.sort(rows)]))
    else:
        x = torch.from_numpy(synthetic_vectors(args.n, seed=args.seed))
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    results = []
    print(f"{args.data}: {x.shape[0]} x {x.shape[1]}, {args.levels} x {args.codebook_size} codes "
          f"({args.codebook_size ** args.levels:,} full codes), seed {args.seed}")
    print("| quantizer | fit (wall / CPU) | raw collisions | after repair | codes used (min level) "
          "| rel. error |")
    print("|---|---|---|---|---|---|")
    for name in names:
        r = run(name, x, args.levels, args.codebook_size, args.seed)
        results.append(r)
        extra = ", extra level" if r["extra_level"] else ""
        print(f"| {r['quantizer']} | {r['fit_s']} s / {r['fit_cpu_s']} s | {r['raw_collisions']:,} | "
              f"{r['after_repair']}{extra} | {r['min_codes_used']} / {args.codebook_size} | "
              f"{r['rel_error']} |",
              flush=True)
    out = REPO / "runs" / "bench" / f"quantizers-{args.data}-{args.n}-{args.levels}x{args.codebook_size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
