"""Benchmark: a relevance pool read as one packed row against a prompt cache repeated for each candidate.

Run: ``.venv/bin/python bench/relevance_packing_speed.py --samples runs/demo/align/samples [--users 24]`` on a
quiet machine (it prints the load). The samples must answer by relevance (``ulmrec demo`` writes them).

``packed`` (:func:`relevance_logits` since 2026-12-07, :func:`pack_pools`): the prompt and the pool's ten
continuations in one row, each continuation masked from the others, one forward pass, no padding.
``cached`` (:func:`cached_relevance_logits`, before): the prompt read once, its key/value cache repeated ten
times, the continuations right-padded to the longest. The untuned SmolLM2 scores the first ``--users``
validation pools each way (``no_grad``, as ranking and validation do), then runs ``--steps`` training
steps' worth of forward + backward on pools of ``--batch-size`` users (the ``relevance`` loss's work, with
gradients for every weight: no LoRA),
alternating, ``--rounds`` times after one warm-up each; printed: users/s of each (best round) and the ratio,
and the largest difference between the two sets of scores.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _samples import pool_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.prompts.encoding import encode_continuation, encode_prompt, relevance_token_ids
    from ulmrec_align.prompts.templates import relevance_continuation
    from ulmrec_align.ranking.scorer import cached_relevance_logits, left_pad, relevance_logits

    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    rows = pool_samples(args.samples, "valid")[: args.users + 1]
    if len(rows) < 2:
        raise SystemExit(f"{args.samples}: fewer than 2 validation pools with relevance answers")
    yes_id, no_id = relevance_token_ids(tok)
    pad = int(tok.pad_token_id)
    prompts = [encode_prompt(tok, s.prompt, s.prompt_code_spans) for s in rows]
    options = [[encode_continuation(tok, relevance_continuation(t)) for t in s.choices or []] for s in rows]
    model = load_causal_lm(resolved, quantization="none", device="cpu")
    paths: dict[str, Callable[..., torch.Tensor]] = {"packed": relevance_logits,
                                                     "cached": cached_relevance_logits}

    def tensors(users: range) -> tuple[torch.Tensor, ...]:
        head, head_mask, _ = left_pad([prompts[i] for i in users], pad)
        width = max(len(c) for i in users for c in options[i])
        n = max(len(options[i]) for i in users)
        ids = torch.full((len(users), n, width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(users):
            for j, c in enumerate(options[i]):
                ids[r, j, : len(c)] = torch.tensor(c)
                mask[r, j, : len(c)] = 1
        return head, head_mask, ids, mask

    def score(path: Callable[..., torch.Tensor], users: range) -> list[torch.Tensor]:
        model.eval()
        with torch.no_grad():
            return [path(model, *tensors(range(i, i + 1)), yes_id=yes_id, no_id=no_id)[0] for i in users]

    def train(path: Callable[..., torch.Tensor], steps: int) -> None:
        model.train()
        for step in range(steps):
            first = 1 + (step * args.batch_size) % max(len(rows) - args.batch_size, 1)
            logits = path(model, *tensors(range(first, first + args.batch_size)), yes_id=yes_id, no_id=no_id)
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
            loss.backward()
            model.zero_grad(set_to_none=True)

    users = range(1, len(rows))
    scoring: dict[str, float] = {}
    training: dict[str, float] = {}
    got: dict[str, list[torch.Tensor]] = {}
    for path in paths.values():                                           # warm-up, not timed
        score(path, range(1))
        train(path, 1)
    for _ in range(args.rounds):
        for name, path in paths.items():
            start = time.perf_counter()
            got[name] = score(path, users)
            took = time.perf_counter() - start
            scoring[name] = min(scoring.get(name, took), took)
            start = time.perf_counter()
            train(path, args.steps)
            took = time.perf_counter() - start
            training[name] = min(training.get(name, took), took)
    load = os.getloadavg()
    print(f"samples {args.samples}, {len(users)} validation users, best of {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    prompt_tokens = sum(len(prompts[i]) for i in users) / len(users)
    real = sum(len(c) for i in users for c in options[i]) / len(users)
    padded = sum(len(options[i]) * max(len(c) for c in options[i]) for i in users) / len(users)
    print(f"a user: prompt {prompt_tokens:.1f} tokens, continuations {real:.1f} tokens ({padded:.1f} padded)")
    for name in paths:
        print(f"{name:7s} scoring {len(users) / scoring[name]:6.2f} users/s   training "
              f"{args.steps * args.batch_size / training[name]:6.2f} users/s (forward + backward, "
              f"{args.batch_size} a step)")
    print(f"packed / cached: scoring × {scoring['cached'] / scoring['packed']:.2f}, "
          f"training × {training['cached'] / training['packed']:.2f}")
    diff = max(float((a - b).abs().max()) for a, b in zip(got["packed"], got["cached"], strict=True))
    print(f"largest score difference {diff:.2e} (log-odds)")




if __name__ == "__main__":
    main()
