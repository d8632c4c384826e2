"""Diagnostic: validation NDCG@10 of title-likelihood ranking, four ways, for a base model or an adapter.

    .venv/bin/python bench/title_validation.py SAMPLES [--adapter DIR]

``SAMPLES``: a folder of ``ulmrec align build --answer title``; ``--adapter``: a LoRA adapter folder (a
checkpoint of ``align train``, e.g. ``T.partial/checkpoint-100``), else the untuned base model. Prints the
NDCG@10 of the next_item validation samples (the retriever's candidates, the target among them) ranked by:
``sum`` log p(title + EOS | prompt) (the plain likelihood), ``mean`` the same per token, ``pmi`` the sum minus
log p(title | content-free prompt) (what ``align rank`` does by default), ``null`` the content-free
likelihood alone (the title prior), and ``random`` the expected NDCG@10 of a random order.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def ndcg(samples: list, rows: list[list[float]]) -> float:  # type: ignore[type-arg]
    """Mean NDCG@10 of each sample's target (``ulmrec_align.ranking.scorer.ndcg_at``, ties pessimistic)."""
    from ulmrec_align.ranking.scorer import ndcg_at

    scores = np.full((len(rows), max(map(len, rows))), -np.inf)
    for i, row in enumerate(rows):
        scores[i, : len(row)] = row
    return ndcg_at(scores, [s.candidates.index(s.target) for s in samples], 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", type=Path)
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from ulmrec_align.prompts.config import PromptConfig
    from ulmrec_align.prompts.encoding import encode_prompt, encode_response
    from ulmrec_align.ranking.loading import load_ranking_model
    from ulmrec_align.ranking.ranker import title_log_likelihoods, title_priors, without_prior
    from ulmrec_align.tasks.schema import read_samples

    valid = [s for s in read_samples(args.samples, "valid") if s.task == "next_item" and s.choices]
    if not valid:
        raise SystemExit(f"{args.samples}: no title-answer validation samples (align build --answer title)")
    ranker = load_ranking_model(args.model, prompt=PromptConfig(answer="title"))
    model = ranker.model
    if args.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(args.adapter)).eval()
    tok = ranker.tokenizer
    prompts = [encode_prompt(tok, s.prompt, s.prompt_code_spans) for s in valid]
    texts = [list(s.choices or []) for s in valid]
    ll = title_log_likelihoods(model, tok, prompts, texts, batch_size=args.batch_size)
    prior = title_priors(model, tok, [t for row in texts for t in row], batch_size=args.batch_size)
    null = [[prior[t] for t in row] for row in texts]
    lengths = [[len(encode_response(tok, t)) for t in row] for row in texts]     # title tokens + EOS
    print(f"{args.adapter or args.model}: {len(valid)} validation users, load {os.getloadavg()[0]:.1f}")
    per_token = [[x / n for x, n in zip(v, nn, strict=True)] for v, nn in zip(ll, lengths, strict=True)]
    for name, rows in (("sum", ll), ("mean", per_token), ("pmi", without_prior(ll, texts, prior)),
                       ("null", null)):
        print(f"  {name:6s} {ndcg(valid, rows):.4f}")
    expected = np.mean([np.mean([1 / math.log2(1 + k) for k in range(1, len(s.candidates) + 1)])
                        for s in valid])
    print(f"  random {expected:.4f}")


if __name__ == "__main__":
    main()
