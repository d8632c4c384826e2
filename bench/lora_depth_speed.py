"""Benchmark: a relevance-head training step with LoRA on every decoder layer against LoRA on the top K only.

Run: ``.venv/bin/python bench/lora_depth_speed.py --samples runs/demo/align/samples [--top 8] [--steps 6]``
on a quiet machine (it prints the load). The samples folder must answer by relevance (``ulmrec demo`` writes
one).

``align train --lora-top-layers K`` puts adapters on the top K decoder layers only: nothing below them has a
gradient, so autograd's backward pass stops at the lowest adapted layer and the layers below run forward
only. Both models (same base weights, r = 8 on q/v, the same batches of ``--batch-size`` next_item pools)
train in one process, alternating step by step, so the ratio is the figure to quote; step 0 warms up and is
not timed.
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
    parser.add_argument("--top", type=int, default=8, help="Adapted top layers of the cheaper model.")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model

    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.prompts.encoding import relevance_token_ids
    from ulmrec_align.tuning.data import PadCollator, encode_samples
    from ulmrec_align.tuning.loss import alignment_loss

    torch.manual_seed(0)
    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    samples = pool_samples(args.samples, "train")
    dataset = encode_samples(tok, samples, index_tokens="plain", max_length=2048, answer="relevance")[0]
    collate = PadCollator(pad_id=int(tok.pad_token_id), choices=True)
    yes_no = relevance_token_ids(tok)

    def adapted(layers: list[int] | None) -> torch.nn.Module:
        torch.manual_seed(0)
        lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                          layers_to_transform=layers, task_type="CAUSAL_LM")
        return get_peft_model(load_causal_lm(resolved, quantization="none", device="cpu"), lora)

    every = adapted(None)
    total = int(every.config.num_hidden_layers)
    if not 1 <= args.top <= total:
        raise SystemExit(f"--top {args.top}: {args.model} has {total} decoder layers")
    models = {"every layer": every, f"top {args.top}": adapted(list(range(total - args.top, total)))}
    optimisers = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
                  for name, m in models.items()}
    seconds = dict.fromkeys(models, 0.0)
    tokens = 0
    for step in range(args.steps + 1):
        at = [(step * args.batch_size + i) % len(dataset.rows) for i in range(args.batch_size)]
        rows = [dataset.rows[i] for i in at]
        batch = collate(rows)
        if step:
            tokens += sum(r["prompt_length"] + sum(len(c) for c in r["choice_ids"]) for r in rows)
        for name, model in models.items():
            model.train()
            start = time.perf_counter()
            loss, _, _ = alignment_loss(model, batch, kind="relevance", letter_ids=[], yes_no=yes_no)
            optimisers[name].zero_grad()
            loss.backward()
            optimisers[name].step()
            if step:
                seconds[name] += time.perf_counter() - start
    load = os.getloadavg()
    print(f"samples {args.samples}, {args.steps} timed steps of batch {args.batch_size}, {total} decoder "
          f"layers, {torch.get_num_threads()} threads, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, model in models.items():
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{name:12s}  {seconds[name] / args.steps:6.2f} s/step  "
              f"{tokens / seconds[name]:7.1f} tokens/s  {trainable:,} trainable parameters")
    names = list(models)
    print(f"{names[1]} / {names[0]}: train steps/s × {seconds[names[0]] / seconds[names[1]]:.2f}")


if __name__ == "__main__":
    main()
