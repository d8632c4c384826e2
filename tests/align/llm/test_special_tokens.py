"""User text is data: a review or a title carrying every special token of the tokenizer (``<|endoftext|>``,
``<|im_start|>``, ``</s>``, ...) never becomes a special id — in plain and added index-token modes, in the
training samples of every task and in the ranker's prompts and candidate continuations."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_ulmrec

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.models.resolve import resolve_model
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.encoding import candidate_ids, encode_prompt, special_prefix
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.ranking.ranker import ranking_prompts
from ulmrec_align.retrieval.candidates import CandidateRow
from ulmrec_align.tasks.build import user_codes
from ulmrec_align.tasks.schema import read_samples
from ulmrec_align.tuning.data import encode_samples
from ulmrec_align.tuning.inputs import prepared_tokenizer
from ulmrec_index.artifact import load_index


def ulmrec(*args: str | Path) -> None:
    run_ulmrec(*args, check=True)


#: The special tokens of the two tokenizers the test uses (SmolLM2's and the tiny Llama's).
HOSTILE = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<s>", "</s>", "<unk>")


def _hostile(text: str) -> str:
    return f"{''.join(HOSTILE)} {text}"                              # first, so no cut removes them


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared synthetic dataset whose reviews and titles all carry each special token; its index."""
    root = tmp_path_factory.mktemp("hostile")
    ulmrec("data", "synthetic", "--out", root / "raw", "--users", "40", "--items", "40", "--seed", "3")
    reviews = root / "raw" / "reviews_Synthetic_5.json.gz"
    with gzip.open(reviews, "rt") as lines:
        rows = [json.loads(line) for line in lines]
    with gzip.open(reviews, "wt") as out:
        out.writelines(json.dumps({**r, "reviewText": _hostile(r["reviewText"])}) + "\n" for r in rows)
    meta = root / "raw" / "meta_Synthetic.json.gz"
    with gzip.open(meta, "rt") as lines:
        items = [ast.literal_eval(line) for line in lines]
    with gzip.open(meta, "wt") as out:
        out.writelines(repr({**m, "title": _hostile(m["title"])} if "title" in m else m) + "\n"
                       for m in items)
    ulmrec("data", "prepare", "--source", "amazon", "--path", root / "raw", "--out", root / "data")
    ulmrec("data", "users", root / "data", "--out", root / "users.jsonl")
    ulmrec("index", "build", "--users", root / "users.jsonl", "--out", root / "index", "--levels", "2",
           "--codebook-size", "8", "--cache-dir", root / ".cache")
    return root


def _tokenizer_path(kind: str, tiny_llm: Path) -> str:
    return str(tiny_llm) if kind == "tiny" else str(resolve_model("smollm2"))


def _text_only(ids: list[int], special: set[int], prefix: list[int]) -> list[int]:
    assert ids[: len(prefix)] == prefix
    return [i for i in ids[len(prefix):] if i in special]


@pytest.mark.parametrize(("kind", "mode"), [("smollm2", "plain"), ("tiny", "plain"), ("smollm2", "added")])
def test_no_special_token_comes_from_a_review_or_a_title(hostile: Path, tiny_llm: Path, tmp_path: Path,
                                                         kind: str, mode: IndexTokens) -> None:
    model = _tokenizer_path(kind, tiny_llm)
    out = tmp_path / "samples"
    ulmrec("align", "build", "--data", hostile / "data", "--out", out, "--index", hostile / "index",
           "--model", model, "--index-tokens", mode, "--n-candidates", "5", "--history-items", "3",
           "--title-tokens", "40", "--text-tokens", "200", "--max-prompt-tokens", "4096", "--no-progress")
    samples = read_samples(out, "train")
    assert {s.task for s in samples} >= {"next_item", "index_to_pref", "pref_to_index", "history_to_index"}
    assert any(all(token in s.prompt for token in HOSTILE) for s in samples)
    assert any(all(token in s.response for token in HOSTILE) for s in samples if s.task == "index_to_pref")
    tokenizer: Any
    tokenizer, code_ids = prepared_tokenizer(model, out, mode)       # the code tokens added in added mode
    assert bool(code_ids) == (mode == "added")
    special = set(tokenizer.all_special_ids) - set(code_ids)         # code tokens come from marked spans only
    assert {tokenizer.convert_tokens_to_ids(t) for t in HOSTILE} & special
    prefix = special_prefix(tokenizer)
    eos = tokenizer.eos_token_id

    # training: every sample of every task, prompt and response
    encoded, _ = encode_samples(tokenizer, samples, index_tokens=mode, max_length=8192)
    for row, sample in zip(encoded.rows, samples, strict=True):
        ids, n = row["input_ids"], row["prompt_length"]
        assert _text_only(ids[:n], special, prefix) == [], (sample.task, sample.prompt)
        assert [i for i in ids[n:] if i in special] == [eos], (sample.task, sample.response)

    # ranking: the ranker's prompts (reviews and history titles) and each answer kind's candidate ids
    dataset = PreparedDataset.load(hostile / "data")
    rows = [CandidateRow(user_id=u, raw_user_id=str(u), split="test", candidates=list(range(5)),
                         scores=[0.0] * 5, target=0, target_in_candidates=True,
                         history_length=len(dataset.splits[u].test_input)) for u in range(5)]
    codes = user_codes(dataset, load_index(hostile / "index"))
    for answer in ("letter", "title", "relevance"):
        config = PromptConfig(n_candidates=5, history_items=3, title_tokens=40, answer=answer,
                              max_prompt_tokens=4096)
        builder = PromptBuilder(tokenizer, config, titles=dataset.titles(), index_tokens=mode)
        for prompt in ranking_prompts(dataset, rows, builder, codes):
            assert all(token in prompt.rendered.text for token in HOSTILE)
            ids = encode_prompt(tokenizer, prompt.rendered.text, prompt.rendered.spans, index_tokens=mode)
            assert _text_only(ids, special, prefix) == [], prompt.rendered.text
            if answer != "letter":
                choices = prompt.choices or []
                for title, choice in zip(choices, candidate_ids(tokenizer, choices, answer), strict=True):
                    assert all(token in title for token in HOSTILE)
                    expected = [eos] if answer == "title" else []
                    assert [i for i in choice if i in special] == expected, title
