"""Write a model of a given architecture with random weights: for speed checks where the real weights cannot
travel (bench/gpu_check.sh carries SmolLM2's config and tokenizer, 3 MB, not its 98 MB of weights).

Run: ``python bench/random_model.py --like FOLDER --out DIR [--layers N] [--hidden H] [--seed 0]``

``FOLDER`` holds a Hugging Face ``config.json`` and tokenizer files; ``DIR`` gets the same config (layers
and hidden size overridden when given, for a small CPU rehearsal), float32 safetensors initialised by the
architecture's own initialiser under ``--seed``, and the tokenizer. Timings of such a model equal the real
one's (same shapes, same kernels); its rankings are meaningless.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--like", type=Path, required=True, help="Folder with config.json and a tokenizer.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--layers", type=int, default=None, help="Override num_hidden_layers.")
    parser.add_argument("--hidden", type=int, default=None,
                        help="Override hidden_size (intermediate size scaled alike, head count kept).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(args.like))
    if args.layers:
        config.num_hidden_layers = args.layers
    if args.hidden:
        scale = args.hidden / config.hidden_size
        config.intermediate_size = max(8, int(config.intermediate_size * scale))
        config.hidden_size = args.hidden
        if hasattr(config, "head_dim"):
            config.head_dim = args.hidden // config.num_attention_heads
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    for file in args.like.iterdir():
        if file.is_file() and file.name != "config.json" and not file.name.endswith(".safetensors"):
            shutil.copy2(file, args.out / file.name)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {config.model_type}, {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"{params / 1e6:.1f}M parameters, random weights (seed {args.seed})")


if __name__ == "__main__":
    main()
