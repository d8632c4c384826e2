"""Benchmark: relevance scoring in bfloat16 against float32 on CPU — speed, and how much the scores move.

Run: ``.venv/bin/python bench/scoring_dtype.py --samples runs/demo/align/samples [--users 24]`` on a quiet
machine (it prints the load). The samples must answer by relevance (``ulmrec demo`` writes them).

Scoring the pools of the validation and test users is most of the demo's time (docs/results.md). On a CPU
with AVX512-BF16 a bfloat16 matrix product can be faster than float32; the scores then carry bfloat16's
8-bit mantissa. The same untuned SmolLM2 is loaded twice (float32, and cast to bfloat16), and the first
``--users`` validation pools are scored by :func:`relevance_scores` with each, alternating, after one warm-up
user each. Printed: users/s of each and their ratio, the largest and mean absolute difference of the
log-odds, and the share of users whose order of candidates is the same under both.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from _samples import pool_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.prompts.encoding import candidate_ids, encode_prompt, relevance_token_ids
    from ulmrec_align.ranking.scorer import relevance_scores

    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    rows = pool_samples(args.samples, "valid")
    rows = rows[: args.users + 1]
    prompts = [encode_prompt(tok, s.prompt, s.prompt_code_spans) for s in rows]
    options = [candidate_ids(tok, s.choices or [], "relevance") for s in rows]
    yes_id, no_id = relevance_token_ids(tok)
    models = {"float32": load_causal_lm(resolved, quantization="none", device="cpu").eval()}
    models["bfloat16"] = load_causal_lm(resolved, quantization="none", device="cpu",
                                        dtype=torch.bfloat16).eval()
    scores: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    with torch.no_grad():
        for model in models.values():                          # warm-up: the first user, not timed
            relevance_scores(model, prompts[:1], options[:1], yes_id=yes_id, no_id=no_id,
                             pad_id=int(tok.pad_token_id), batch_size=args.batch_size)
        for name, model in models.items():
            start = time.perf_counter()
            scores[name] = relevance_scores(model, prompts[1:], options[1:], yes_id=yes_id, no_id=no_id,
                                            pad_id=int(tok.pad_token_id), batch_size=args.batch_size)
            seconds[name] = time.perf_counter() - start
    users = len(prompts) - 1
    load = os.getloadavg()
    print(f"samples {args.samples}, {users} validation users, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name in models:
        print(f"{name:9s} {users / seconds[name]:6.2f} users/s")
    print(f"bfloat16 / float32: users/s × {seconds['float32'] / seconds['bfloat16']:.2f}")
    full, half = (np.asarray([v for row in scores[k] for v in row]) for k in ("float32", "bfloat16"))
    def order(row: list[float]) -> list[int]:
        return [int(i) for i in np.argsort(-np.asarray(row), kind="stable")]

    same = sum(order(a) == order(b) for a, b in zip(scores["float32"], scores["bfloat16"], strict=True))
    print(f"log-odds |bfloat16 − float32|: max {np.abs(full - half).max():.4f}, mean "
          f"{np.abs(full - half).mean():.4f} (float32 log-odds sd {full.std():.4f}); same order of "
          f"candidates for {same} of {users} users")


if __name__ == "__main__":
    main()
