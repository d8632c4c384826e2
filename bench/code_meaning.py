"""Benchmark: does a tuned LLM know what a user's code means? On a finished run of the synthetic world.

Run: ``.venv/bin/python bench/code_meaning.py --label full=RUN [--label …] [--users 120]`` (runs whose
samples hold ``index_to_pref``, e.g. ``configs/demo-cpu-nohistory-epoch.toml``); ``--base`` adds the untuned
model on the first run's prompts.

Every user of the world has a hidden trait, stated by one fixed sentence of the world's (``TRAITS`` in
``ulmrec_align.data.synthetic``: "I only buy Vegan products: cruelty-free, nothing from animals." …). For the
first ``--users`` users, the prompt of the ``index_to_pref`` task ("Describe the preferences of the user with
this index. … User Index: <a_1><b_4><c_14>", the template of the run's first such training sample, with
the user's code) is scored against each of the four sentences as the response, ``log p(sentence | prompt)``
summed over its tokens. Printed per run:

* **accuracy** — the share of users whose own trait's sentence scores highest (chance 0.25; always the most
  common trait: its share);
* **margin** — the mean of the own sentence's log-probability minus the mean of the other three (nats).

The same prompts with the codes shuffled among the users (one seeded permutation) give the figure a model
gets from the prompt's form alone — a model that reads the code is above it, one that learned the traits'
frequencies is not. Nothing here is used to choose a setting; it explains a result.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from world import user_traits

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.data.synthetic import TRAITS
from ulmrec_align.prompts.encoding import encode_prompt, encode_response
from ulmrec_align.ranking.loading import load_ranking_model
from ulmrec_align.ranking.scorer import choice_log_likelihoods
from ulmrec_align.tasks.schema import AlignmentSample
from ulmrec_app.pipeline.layout import RunLayout
from ulmrec_eval.runtime.io import iter_jsonl_models
from ulmrec_index.artifact import load_index


def template(samples: Path) -> tuple[str, str, str]:
    """``(before, code, after)`` of the first ``index_to_pref`` training prompt: the text around its code."""
    for _, sample in iter_jsonl_models(samples / "train.jsonl", AlignmentSample):
        if sample.task == "index_to_pref":
            (start, end), = sample.prompt_code_spans
            prompt = sample.prompt
            return prompt[:start], prompt[start:end], prompt[end:]
    raise SystemExit(f"{samples / 'train.jsonl'} has no index_to_pref sample")


def scores(ranker: object, prompts: list[tuple[str, str, str]], sentences: list[str]) -> np.ndarray:
    """``(users, 4)``: log p(sentence | prompt) summed over the sentence's tokens."""
    tokenizer = ranker.tokenizer  # type: ignore[attr-defined]
    tokens = ranker.index_tokens  # type: ignore[attr-defined]
    encoded = []
    for before, code, after in prompts:
        text = before + code + after
        encoded.append(encode_prompt(tokenizer, text, [(len(before), len(before) + len(code))],
                                     index_tokens=tokens))
    responses = [encode_response(tokenizer, s, [], index_tokens=tokens) for s in sentences]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = choice_log_likelihoods(ranker.model, encoded, [responses] * len(encoded),  # type: ignore[attr-defined]
                                  pad_id=pad, batch_size=4)
    return np.asarray(rows)


def summary(values: np.ndarray, own: list[int]) -> tuple[float, float]:
    """``(accuracy, margin)`` of the own sentence against the other three."""
    index = np.arange(len(own))
    mine = values[index, own]
    others = (values.sum(axis=1) - mine) / (values.shape[1] - 1)
    return float(np.mean(values.argmax(axis=1) == np.asarray(own))), float(np.mean(mine - others))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", action="append", required=True, help="NAME=RUN (a finished run's folder)")
    parser.add_argument("--users", type=int, default=120, help="The first users of the world (by user id).")
    parser.add_argument("--base", default=None, help="Also score this untuned model (e.g. smollm2).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the codes' shuffle.")
    args = parser.parse_args()
    names = list(TRAITS)
    sentences = [TRAITS[name] for name in names]
    models: list[tuple[str, Path, str]] = []
    for label in args.label:
        name, _, run = label.partition("=")
        models.append((name, Path(run), str(RunLayout(Path(run)).model)))
    if args.base:
        models.append((f"untuned {args.base}", models[0][1], args.base))
    print(f"{'model':<22} {'users':>5}  {'accuracy':>8}  {'margin':>7}  {'shuffled codes: accuracy':>24}  "
          f"{'margin':>7}")
    for name, run, model in models:
        layout = RunLayout(run)
        if not sorted(layout.raw.glob("traits_*.jsonl")):
            raise SystemExit(f"{layout.raw} has no traits_*.jsonl: not a run of a synthetic world")
        dataset = PreparedDataset.load(layout.dataset)
        traits = user_traits(run, dataset)
        index = load_index(layout.index)
        before, _, after = template(layout.samples)
        users = [u for u in range(dataset.n_users) if dataset.users[u].raw_id in index.codes][: args.users]
        codes = [index.token(dataset.users[u].raw_id) for u in users]
        shuffled = codes[:]
        random.Random(args.seed).shuffle(shuffled)
        own = [names.index(traits[u]) for u in users]
        ranker = load_ranking_model(model)
        real = summary(scores(ranker, [(before, c, after) for c in codes], sentences), own)
        fake = summary(scores(ranker, [(before, c, after) for c in shuffled], sentences), own)
        print(f"{name:<22} {len(users):>5}  {real[0]:>8.3f}  {real[1]:>+7.3f}  {fake[0]:>24.3f}  "
              f"{fake[1]:>+7.3f}")
        counts = np.bincount(own, minlength=len(names))
        print(f"{'':<22} chance 0.250; always the commonest trait here {counts.max() / len(own):.3f}")


if __name__ == "__main__":
    main()
