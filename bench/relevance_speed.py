"""Benchmark: train and rank speed of the relevance head against the title head, on the same samples.

Run: ``.venv/bin/python bench/relevance_speed.py --samples runs/demo/align/samples [--steps 6] [--users 24]``
on a quiet machine (it prints the load). The samples folder must answer by relevance (``ulmrec demo`` writes
one): each next_item sample carries its pool's titles, so both heads see the same prompts and candidates.

- train: LoRA (r=8, q/v) optimizer steps of batch ``--batch-size`` with ``--loss relevance`` (each candidate's
  continuation read after the cached prompt, one logit row each) against ``--loss choices`` (each candidate's
  title + EOS summed over its tokens after the cached prompt, the title head; the content-free prior pass
  without gradient included, as it trains); tokens/s counts prompt + candidate tokens fed.
- rank: ``--users`` prompts scored with :func:`relevance_scores` against :func:`choice_log_likelihoods`
  (prompt read once per user, its cache shared by the candidates); users/s and tokens/s.

Both heads run in the same process, alternating, on the same model weights; the ratio is the figure to quote.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from _samples import pool_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--users", type=int, default=24)
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model

    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.prompts.encoding import candidate_ids, encode_prompt, relevance_token_ids
    from ulmrec_align.ranking.ranker import null_title_prompt
    from ulmrec_align.ranking.scorer import choice_log_likelihoods, relevance_scores
    from ulmrec_align.tuning.data import PadCollator, encode_samples
    from ulmrec_align.tuning.loss import alignment_loss

    torch.manual_seed(0)
    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    samples = pool_samples(args.samples, "train")
    lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                      task_type="CAUSAL_LM")
    model = get_peft_model(load_causal_lm(resolved, quantization="none", device="cpu"), lora)
    yes_no = relevance_token_ids(tok)
    def encoded(answer: str):  # type: ignore[no-untyped-def]
        return encode_samples(tok, samples, index_tokens="plain", max_length=2048, answer=answer)[0]

    heads = {
        "relevance": (encoded("relevance"), PadCollator(pad_id=int(tok.pad_token_id), choices=True)),
        "title": (encoded("title"),
                  PadCollator(pad_id=int(tok.pad_token_id), choices=True,
                              null_prompt=tuple(null_title_prompt(tok)))),
    }
    loss_kind = {"relevance": "relevance", "title": "choices"}
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    train: dict[str, list[float]] = {h: [0.0, 0.0] for h in heads}      # seconds, tokens
    model.train()
    for step in range(args.steps + 1):                                   # step 0 warms up, not timed
        rows_at = [(step * args.batch_size + i) % len(samples) for i in range(args.batch_size)]
        for head, (dataset, collate) in heads.items():
            rows = [dataset.rows[i] for i in rows_at]
            batch = collate(rows)
            tokens = sum(r["prompt_length"] + sum(len(c) for c in r["choice_ids"]) for r in rows)
            start = time.perf_counter()
            loss, _, _ = alignment_loss(model, batch, kind=loss_kind[head],  # type: ignore[arg-type]
                                        letter_ids=[], yes_no=yes_no)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step:
                train[head][0] += time.perf_counter() - start
                train[head][1] += tokens
    users = samples[: args.users]
    prompts = [encode_prompt(tok, s.prompt) for s in users]
    rank: dict[str, list[float]] = {}
    for head in ("relevance", "title"):
        options = [candidate_ids(tok, s.choices or [], head) for s in users]
        tokens = sum(len(p) + sum(len(c) for c in o) for p, o in zip(prompts, options, strict=True))
        start = time.perf_counter()
        if head == "relevance":
            relevance_scores(model, prompts, options, yes_id=yes_no[0], no_id=yes_no[1],
                             pad_id=int(tok.pad_token_id), batch_size=8)
        else:
            choice_log_likelihoods(model, prompts, options, pad_id=int(tok.pad_token_id), batch_size=8)
        rank[head] = [time.perf_counter() - start, tokens]
    load = os.getloadavg()
    print(f"samples {args.samples}, {args.steps} timed steps of batch {args.batch_size}, {len(users)} users "
          f"ranked, {torch.get_num_threads()} threads, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for head in ("relevance", "title"):
        seconds, tokens = train[head]
        r_seconds, r_tokens = rank[head]
        print(f"{head:9s}  train {seconds / args.steps:6.2f} s/step  {tokens / seconds:7.1f} tokens/s   "
              f"rank {len(users) / r_seconds:6.2f} users/s  {r_tokens / r_seconds:7.1f} tokens/s")
    print(f"relevance / title: train steps/s × {train['title'][0] / train['relevance'][0]:.2f}, "
          f"rank users/s × {rank['title'][0] / rank['relevance'][0]:.2f}")


if __name__ == "__main__":
    main()
