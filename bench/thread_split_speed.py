"""Benchmark: two LLM stages at once with one thread each, against one stage at a time with every thread.

Run: ``.venv/bin/python bench/thread_split_speed.py --samples runs/demo/align/samples [--steps 6]`` on a
quiet machine (it prints the load). The samples folder must answer by relevance (``ulmrec demo`` writes one).

``ulmrec demo`` trains and ranks two runs (ULMRec and the no-index baseline). On a small CPU, torch's
threads do not scale perfectly, so two processes with ``T / 2`` threads each may finish two runs' work
sooner than one process with ``T`` threads doing it twice. This measures exactly that on the demo's work:
each worker process loads SmolLM2 with LoRA on the top 8 layers, trains ``--steps`` relevance steps of
``--batch-size`` pools and then scores ``--steps`` batches without gradients (validation and ranking);
step 0 of each warms up and is not timed. The solo phase runs one worker with every thread, twice in turn
(the work of two runs); the split phase runs two workers at once, each with half the threads. Printed:
seconds of each phase (timed steps only, and wall clock from the first start to the last exit, start-up
included) and the split's speed-up (solo / split).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from _samples import pool_samples
    from peft import LoraConfig, get_peft_model

    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.prompts.encoding import relevance_token_ids
    from ulmrec_align.tuning.data import PadCollator, encode_samples
    from ulmrec_align.tuning.loss import alignment_loss

    torch.manual_seed(0)
    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    dataset = encode_samples(tok, pool_samples(args.samples, "train"), index_tokens="plain", max_length=2048,
                             answer="relevance")[0]
    collate = PadCollator(pad_id=int(tok.pad_token_id), choices=True)
    yes_no = relevance_token_ids(tok)
    layers = int(load_causal_lm(resolved, quantization="none", device="cpu").config.num_hidden_layers)
    lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                      layers_to_transform=list(range(layers - 8, layers)), task_type="CAUSAL_LM")
    model = get_peft_model(load_causal_lm(resolved, quantization="none", device="cpu"), lora)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def batch(step: int) -> dict[str, torch.Tensor]:
        start = (args.offset + step) * args.batch_size
        return collate([dataset.rows[(start + i) % len(dataset.rows)] for i in range(args.batch_size)])

    seconds = {"train": 0.0, "score": 0.0}
    model.train()
    for step in range(args.steps + 1):
        began = time.perf_counter()
        loss, _, _ = alignment_loss(model, batch(step), kind="relevance", letter_ids=[], yes_no=yes_no)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step:
            seconds["train"] += time.perf_counter() - began
    model.eval()
    with torch.no_grad():
        for step in range(args.steps + 1):
            began = time.perf_counter()
            alignment_loss(model, batch(step), kind="relevance", letter_ids=[], yes_no=yes_no)
            if step:
                seconds["score"] += time.perf_counter() - began
    print(json.dumps(seconds))


def spawn(args: argparse.Namespace, threads: int, offset: int) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--worker", "--threads", str(threads), "--offset", str(offset),
            "--samples", str(args.samples), "--model", args.model, "--steps", str(args.steps),
            "--batch-size", str(args.batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)


def finish(process: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a worker failed (exit {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    cores = os.cpu_count() or 2
    half = max(1, cores // 2)
    before = os.getloadavg()[0]
    began = time.perf_counter()
    solo = [finish(spawn(args, cores, offset)) for offset in (0, args.steps + 1)]
    solo_wall = time.perf_counter() - began
    began = time.perf_counter()
    running = [spawn(args, half, offset) for offset in (0, args.steps + 1)]
    split = [finish(p) for p in running]
    split_wall = time.perf_counter() - began
    after = os.getloadavg()[0]
    print(f"samples {args.samples}, {args.steps} timed train steps and {args.steps} scoring batches of "
          f"{args.batch_size} pools per worker, {cores} cores, load {before:.2f} before, {after:.2f} after")
    for part in ("train", "score"):
        one = sum(s[part] for s in solo)
        two = max(s[part] for s in split)
        print(f"{part:5s}: one at a time with {cores} threads {one:7.1f} s, two at once with {half} each "
              f"{two:7.1f} s  (× {one / two:.2f})")
    print(f"wall clock, start-up included: one at a time {solo_wall:.1f} s, two at once {split_wall:.1f} s "
          f"(× {solo_wall / split_wall:.2f})")


if __name__ == "__main__":
    main()
