"""Title answers (``answer = "title"``): the scorer's likelihoods are exact, the ranker, the Recommender and
validation all rank by them, and ``align build --answer title`` writes title samples without letters."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.encoding import encode_prompt, encode_response
from ulmrec_align.ranking.loading import load_ranking_model
from ulmrec_align.ranking.ranker import null_title_prompt, rank_prompts, ranking_prompts, title_priors
from ulmrec_align.ranking.recommender import Recommender
from ulmrec_align.ranking.scorer import choice_log_likelihoods
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_align.tasks.schema import read_samples
from ulmrec_align.tuning.data import encode_samples
from ulmrec_align.tuning.validation import ranking_validator, validation_samples

PROMPT = PromptConfig(n_candidates=8, history_items=4, title_tokens=8, answer="title")


@pytest.fixture(scope="module")
def ranker(tiny_llm: Path):  # type: ignore[no-untyped-def]
    return load_ranking_model(tiny_llm, prompt=PROMPT)


def one_by_one(model, prompt: list[int], answer: list[int]) -> float:  # type: ignore[no-untyped-def]
    """``Σ_t log p(answer_t | prompt, answer_<t)`` from one unpadded forward pass."""
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].float().log_softmax(dim=-1)
    return float(sum(logp[len(prompt) + t - 1, tok] for t, tok in enumerate(answer)))


def test_choice_log_likelihoods_are_the_unpadded_sums(ranker) -> None:  # type: ignore[no-untyped-def]
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12]]
    choices = [[[20, 21, 22], [23]], [[24, 25], [26, 27, 28, 29], [30]]]
    got = choice_log_likelihoods(ranker.model, prompts, choices, pad_id=0, batch_size=2)
    expected = [[one_by_one(ranker.model, p, c) for c in cs] for p, cs in zip(prompts, choices, strict=True)]
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(expected), rtol=1e-4, atol=1e-4)
    many = [[20 + k, 30 + k % 3, 40][: 1 + k % 3] for k in range(11)]      # 11 choices: two groups of 8 + 3
    got = choice_log_likelihoods(ranker.model, [prompts[0]], [many], pad_id=0, batch_size=1)[0]
    np.testing.assert_allclose(got, [one_by_one(ranker.model, prompts[0], c) for c in many], rtol=1e-4,
                               atol=1e-4)
    with pytest.raises(ValueError, match="no tokens"):
        choice_log_likelihoods(ranker.model, [[5]], [[[]]], pad_id=0)


def test_ranker_scores_each_candidate_by_its_title_after_a_prompt_without_candidates(  # type: ignore[no-untyped-def]
        pipeline: Pipeline, ranker) -> None:
    dataset = PreparedDataset.load(pipeline.data)
    rows = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[:3]
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles())
    prompts = ranking_prompts(dataset, rows, builder, codes=None)
    ranked = rank_prompts(ranker, prompts, batch_size=3, calibrate=False)
    calibrated = rank_prompts(ranker, prompts, batch_size=3)
    tok = ranker.tokenizer
    null = null_title_prompt(tok)
    assert "Input:\n\n### Response" in tok.decode(null)           # the same instruction, no input at all
    for prompt, row in zip(prompts, ranked, strict=True):
        assert "Candidate pool" not in prompt.rendered.text
        assert "title" in prompt.rendered.text
        assert prompt.choices == [builder.title(i) for i in row.candidates]
        ids = encode_prompt(tok, prompt.rendered.text)
        expected = [one_by_one(ranker.model, ids, encode_response(tok, t)) for t in prompt.choices]
        np.testing.assert_allclose(row.scores, expected, rtol=1e-4, atol=1e-4)
        assert row.source.startswith("titles:")
    for prompt, row in zip(prompts, calibrated, strict=True):          # minus each title's prior
        assert prompt.choices is not None
        ids = encode_prompt(tok, prompt.rendered.text)
        expected = [one_by_one(ranker.model, ids, encode_response(tok, t))
                    - one_by_one(ranker.model, null, encode_response(tok, t)) for t in prompt.choices]
        np.testing.assert_allclose(row.scores, expected, rtol=1e-4, atol=1e-4)
        assert row.source.startswith("titles+pmi:")
    with pytest.raises(ValueError, match="letter orders"):
        ranking_prompts(dataset, rows, builder, codes=None, permutations=3)
    with pytest.raises(ValueError, match="scores each candidate"):
        rank_prompts(ranker, prompts, method="generate")


def test_recommender_scores_any_pool_by_title_likelihood_like_the_ranker(pipeline: Pipeline,  # type: ignore[no-untyped-def]
                                                                         ranker) -> None:
    dataset = PreparedDataset.load(pipeline.data)
    rec = Recommender(ranker, dataset)
    row = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[0]
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles())
    [ranked] = rank_prompts(ranker, ranking_prompts(dataset, [row], builder, codes=None))
    history = list(dataset.splits[row.user_id].test_input)
    got = rec.recommend(history=history, candidates=ranked.candidates, k=len(ranked.candidates))
    assert {r.item_id: r.score for r in got} == pytest.approx(
        dict(zip(ranked.candidates, ranked.scores, strict=True)), abs=1e-5)
    big = [i for i in range(dataset.n_items) if i not in history][:30]      # more than the 8 letters
    many = rec.recommend(history=history, candidates=big, k=30)
    by_item = {r.item_id: r.score for r in many}
    first = rec.recommend(history=history, candidates=big[:5], k=5)
    assert {r.item_id: r.score for r in first} == pytest.approx({i: by_item[i] for i in big[:5]}, abs=1e-5)


def test_align_build_answer_title_writes_title_samples(pipeline: Pipeline, tiny_llm: Path,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path, ranker) -> None:
    out = tmp_path / "A"
    ulmrec("align", "build", "--data", pipeline.data, "--out", out, "--index", pipeline.index,
           "--candidates", pipeline.candidates, "--model", tiny_llm, "--tasks", "next_item,pref_to_index",
           "--answer", "title", "--n-candidates", "8", "--history-items", "4", "--title-tokens", "8",
           "--no-progress")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["prompt"]["answer"] == "title"
    dataset = PreparedDataset.load(pipeline.data)
    builder = PromptBuilder(ranker.tokenizer, PROMPT, titles=dataset.titles())
    train = [s for s in read_samples(out, "train") if s.task == "next_item"]
    assert train
    for s in train:
        assert "Candidate pool" not in s.prompt
        assert "<a_" in s.prompt
        assert s.target is not None
        assert s.response == builder.title(s.target)
        assert s.target_letter is None
        assert s.candidates
        assert s.target in s.candidates
        assert s.choices == [builder.title(i) for i in s.candidates]
    encoded, _ = encode_samples(ranker.tokenizer, train, index_tokens="plain", max_length=512)
    assert all(r["n_letters"] == 0 for r in encoded.rows)        # the title's tokens carry the token loss
    for s, r in zip(train, encoded.rows, strict=True):
        assert r["choice_ids"] == [encode_response(ranker.tokenizer, t) for t in s.choices or []]
        assert r["choice_target"] == (s.candidates or []).index(s.target)
        assert r["input_ids"][: r["prompt_length"]] + r["choice_ids"][r["choice_target"]] == r["input_ids"]
    valid = validation_samples(out, None)
    assert valid
    for s in valid:
        assert s.candidates
        assert s.target in s.candidates
        assert s.target_letter is None
        assert s.choices == [builder.title(i) for i in s.candidates]
    validate = ranking_validator(ranker.tokenizer, valid, index_tokens="plain", batch_size=4)
    scores = validate(ranker.model)
    values = choice_log_likelihoods(
        ranker.model, [encode_prompt(ranker.tokenizer, s.prompt) for s in valid],
        [[encode_response(ranker.tokenizer, t) for t in s.choices or []] for s in valid], pad_id=0)
    prior = title_priors(ranker.model, ranker.tokenizer, [t for s in valid for t in s.choices or []])
    calibrated = [[v - prior[t] for v, t in zip(row, s.choices or [], strict=True)]
                  for s, row in zip(valid, values, strict=True)]

    def mean_ndcg(rows: list[list[float]]) -> float:
        ranks = [sum(v >= row[s.candidates.index(s.target)] for v in row)      # ties: pessimistic
                 for s, row in zip(valid, rows, strict=True)]
        return float(np.mean([1 / np.log2(1 + r) for r in ranks]))

    assert scores.raw == pytest.approx(mean_ndcg(values), abs=1e-6)
    assert scores.score == pytest.approx(mean_ndcg(calibrated), abs=1e-6)
    assert scores.prior is None


def test_cli_rank_with_title_answers_and_its_refusals(pipeline: Pipeline, tiny_llm: Path,
                                                      tmp_path: Path) -> None:
    from support.cli import run_ulmrec

    out = tmp_path / "pred.jsonl"
    common = ["align", "rank", "--model", tiny_llm, "--data", pipeline.data, "--candidates",
              pipeline.candidates, "--limit", "4", "--no-progress"]
    done = run_ulmrec(*common, "--out", out, "--answer", "title", check=True)
    assert "title likelihood" in done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4
    assert all(r["source"].startswith("titles+pmi:") for r in rows)
    for extra, message in [(["--permutations", "3"], "--permutations 1 only"),
                           (["--method", "generate"], "--method logits"),
                           (["--answer", "word"], "'word' is not one of")]:
        args = [*common, "--out", tmp_path / "x.jsonl", *extra]
        if "--answer" not in extra:
            args += ["--answer", "title"]
        bad = run_ulmrec(*args, check=False)
        assert bad.returncode != 0
        assert message in bad.stderr
        assert "Traceback" not in bad.stderr
