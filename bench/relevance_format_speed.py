"""Benchmark: relevance scoring speed with the question after every candidate against once in the prompt.

Run: ``.venv/bin/python bench/relevance_format_speed.py --samples runs/demo/align/samples [--users 24]`` on a
quiet machine (it prints the load). The samples must answer by relevance (``ulmrec demo`` writes them).

Each candidate is read after the user's cached prompt, so the tokens of its continuation are paid ten times
a user, the prompt's once. ``question``: the continuation this project used until 2026-12-07,
``"Candidate: <title>\\nWould the user buy it next? Answer:"``, after the prompt without the "Answer Yes or
No." its instruction now ends with; ``cue``: today's ``"Candidate: <title>\\nAnswer:"``
(:func:`relevance_continuation`) after the sample's prompt as built. The untuned SmolLM2 scores the first
``--users`` validation pools with :func:`relevance_scores` in each format, alternating, ``--rounds`` times,
after one warm-up user each; printed: users/s of each (best round), mean prompt and padded continuation
tokens a user, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import torch
from _samples import pool_samples

#: The continuation's question as it was until 2026-12-07.
OLD_QUESTION = "Would the user buy it next? Answer:"
#: What today's instructions add to ask the question once (removed for the ``question`` format).
_ASKED_ONCE = re.compile(r"[.:]?\s*[Aa]nswer Yes or No\.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    from ulmrec_align.models.loading import load_causal_lm, load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.prompts.encoding import encode_continuation, encode_prompt, relevance_token_ids
    from ulmrec_align.prompts.templates import relevance_continuation
    from ulmrec_align.ranking.scorer import relevance_scores

    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved)
    rows = pool_samples(args.samples, "valid")[: args.users + 1]
    yes_id, no_id = relevance_token_ids(tok)
    formats = {
        "question": ([encode_prompt(tok, _ASKED_ONCE.sub(".", s.prompt), s.prompt_code_spans) for s in rows],
                     [[encode_continuation(tok, f"Candidate: {t}\n{OLD_QUESTION}") for t in s.choices or []]
                      for s in rows]),
        "cue": ([encode_prompt(tok, s.prompt, s.prompt_code_spans) for s in rows],
                [[encode_continuation(tok, relevance_continuation(t)) for t in s.choices or []]
                 for s in rows]),
    }
    if any(s.prompt_code_spans for s in rows):
        raise SystemExit("the benchmark edits prompt text; build the samples with --index none")
    model = load_causal_lm(resolved, quantization="none", device="cpu").eval()
    pad = int(tok.pad_token_id)
    seconds: dict[str, float] = {}
    with torch.no_grad():
        for prompts, options in formats.values():              # warm-up: the first user, not timed
            relevance_scores(model, prompts[:1], options[:1], yes_id=yes_id, no_id=no_id, pad_id=pad,
                             batch_size=args.batch_size)
        for _ in range(args.rounds):
            for name, (prompts, options) in formats.items():
                start = time.perf_counter()
                relevance_scores(model, prompts[1:], options[1:], yes_id=yes_id, no_id=no_id, pad_id=pad,
                                 batch_size=args.batch_size)
                took = time.perf_counter() - start
                seconds[name] = min(seconds.get(name, took), took)
    users = len(rows) - 1
    load = os.getloadavg()
    print(f"samples {args.samples}, {users} validation users, best of {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, (prompts, options) in formats.items():
        prompt_tokens = sum(len(p) for p in prompts[1:]) / users
        tail_tokens = sum(len(o) * max(len(c) for c in o) for o in options[1:]) / users
        print(f"{name:9s} {users / seconds[name]:6.2f} users/s  prompt {prompt_tokens:5.1f} tokens, "
              f"continuations {tail_tokens:5.1f} tokens (padded) a user")
    print(f"cue / question: users/s × {seconds['question'] / seconds['cue']:.2f}")


if __name__ == "__main__":
    main()
