"""Relevance answers (``answer = "relevance"``): one log-odds per candidate read after the prompt, the
same numbers in training, validation, ``align rank`` and the ``Recommender``; samples on the retriever's own
pools; and the listwise loss learns a rule a score must read the candidate for."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec
from support.cli import run_ulmrec

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.encoding import candidate_ids, encode_prompt, relevance_token_ids
from ulmrec_align.prompts.templates import relevance_continuation
from ulmrec_align.ranking.fusion import standardise
from ulmrec_align.ranking.loading import load_ranking_model
from ulmrec_align.ranking.ranker import rank_prompts, ranking_prompts
from ulmrec_align.ranking.recommender import Recommender
from ulmrec_align.ranking.scorer import (
    cached_relevance_logits,
    left_align,
    pack_pools,
    packs_pools,
    relevance_logits,
    relevance_scores,
)
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_align.tasks.schema import read_samples
from ulmrec_align.tuning.data import PadCollator, encode_samples
from ulmrec_align.tuning.loss import alignment_loss
from ulmrec_align.tuning.validation import ranking_validator, validation_samples

PROMPT = PromptConfig(n_candidates=8, history_items=4, title_tokens=8, answer="relevance")


@pytest.fixture(scope="module")
def ranker(tiny_llm: Path):  # type: ignore[no-untyped-def]
    return load_ranking_model(tiny_llm, prompt=PROMPT)


def log_odds_one_by_one(model, prompt: list[int], continuation: list[int],  # type: ignore[no-untyped-def]
                        yes_no: tuple[int, int]) -> float:
    """``z_yes − z_no`` at the last token of ``prompt + continuation``, one unpadded forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + continuation])).logits[0, -1].float()
    return float(logits[yes_no[0]] - logits[yes_no[1]])


def test_left_align_moves_each_row_to_the_right_end() -> None:
    ids = torch.tensor([[5, 6, 0, 0], [7, 8, 9, 1], [4, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    moved, kept = left_align(ids, mask)
    assert moved.tolist() == [[0, 0, 5, 6], [7, 8, 9, 1], [0, 0, 0, 4]]
    assert kept.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]]


def test_relevance_scores_are_the_unpadded_log_odds_and_read_the_candidate(ranker) -> None:  # type: ignore[no-untyped-def]
    tok, model = ranker.tokenizer, ranker.model
    yes_no = relevance_token_ids(tok)
    assert yes_no[0] != yes_no[1]
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12]]
    titles = [["red lipstick", "a much longer blue face cream title", "soap"], ["vegan shampoo", "mascara"]]
    conts = [candidate_ids(tok, row, "relevance") for row in titles]
    assert conts[0][0] == candidate_ids(tok, ["red lipstick"], "relevance")[0]
    assert tok.decode(conts[0][0]).strip() == relevance_continuation("red lipstick")
    got = relevance_scores(model, prompts, conts, yes_id=yes_no[0], no_id=yes_no[1], pad_id=0, batch_size=1)
    expected = [[log_odds_one_by_one(model, p, c, yes_no) for c in row] for p, row in zip(prompts, conts,
                                                                                           strict=True)]
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(expected), rtol=1e-4, atol=1e-4)
    assert packs_pools(model)                  # so both users' pools were packed rows of one forward pass
    alone = relevance_scores(model, prompts, conts, yes_id=yes_no[0], no_id=yes_no[1], pad_id=0,
                             users_per_pass=1)
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(alone), rtol=1e-4, atol=1e-4)
    swapped = relevance_scores(model, [prompts[0]], [[conts[0][1], conts[0][0], conts[0][2]]],
                               yes_id=yes_no[0], no_id=yes_no[1], pad_id=0)[0]
    np.testing.assert_allclose(swapped, [got[0][1], got[0][0], got[0][2]], rtol=1e-4, atol=1e-4)
    assert len({round(v, 4) for v in got[0]}) == 3                    # the title changes the score


def test_the_loss_is_the_listwise_cross_entropy_with_gradients_through_the_prompt(ranker) -> None:  # type: ignore[no-untyped-def]
    tok, model = ranker.tokenizer, ranker.model
    yes_no = relevance_token_ids(tok)
    prompt = [5, 6, 7, 8]
    pool = candidate_ids(tok, ["red lipstick", "blue cream", "soap"], "relevance")
    row = {"input_ids": [*prompt, 9], "labels": [-100, -100, -100, -100, 9], "n_letters": 0, "task_id": 0,
           "prompt_length": 4, "choice_ids": pool, "choice_target": 2}
    batch = PadCollator(pad_id=0, choices=True)([row])
    model.zero_grad()
    loss, _, items = alignment_loss(model, batch, kind="relevance", letter_ids=[], yes_no=yes_no)
    scores = [log_odds_one_by_one(model, prompt, c, yes_no) for c in pool]
    expected = float(-torch.log_softmax(torch.tensor(scores), 0)[2])
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-4)
    assert items.tolist() == [1.0]
    loss.backward()
    assert model.get_input_embeddings().weight.grad[prompt].abs().sum() > 0   # through the prompt
    model.zero_grad()
    # --retriever-prior β: the loss reads softmax(s + β z(r)); a pool without the scores is refused
    prior = [0.5, -1.0, 0.25]
    row["choice_prior"] = standardise(prior).tolist()
    with torch.no_grad():
        fused, _, _ = alignment_loss(model, PadCollator(pad_id=0, choices=True, prior_weight=2.0)([row]),
                                     kind="relevance", letter_ids=[], yes_no=yes_no)
    shifted = torch.tensor(scores) + 2.0 * torch.tensor(standardise(prior))
    assert float(fused) == pytest.approx(float(-torch.log_softmax(shifted.float(), 0)[2]), abs=1e-4)
    assert float(fused) != pytest.approx(expected, abs=1e-2)
    del row["choice_prior"]
    with pytest.raises(ValueError, match="retriever's scores"):
        PadCollator(pad_id=0, choices=True, prior_weight=2.0)([row])


def test_the_listwise_relevance_loss_learns_a_rule_that_needs_the_candidate(tiny_llm: Path) -> None:
    """A world the tiny model can only solve by reading the candidate: the prompt names a colour and the
    target is the one candidate of four with that colour. Trained with the relevance loss, held-out accuracy
    rises far above chance (1/4: 0.45 of 120 is 5 standard errors above it) and the untuned model's."""
    from transformers import AutoModelForCausalLM

    from ulmrec_align.models.loading import load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer(tiny_llm)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llm))
    yes_no = relevance_token_ids(tok)
    colours = ["red", "blue", "green", "pink", "black", "white"]
    things = ["cream", "soap", "brush", "gel", "oil", "mask"]
    rng = random.Random(0)

    def example() -> tuple[list[int], list[list[int]], int]:
        picked = rng.sample(colours, 4)
        titles = [f"{c} {rng.choice(things)}" for c in picked]
        target = rng.randrange(4)
        return encode_prompt(tok, f"Likes: {picked[target]}"), candidate_ids(tok, titles, "relevance"), target

    def accuracy(examples: list[tuple[list[int], list[list[int]], int]]) -> float:
        scores = relevance_scores(model, [p for p, _, _ in examples], [c for _, c, _ in examples],
                                  yes_id=yes_no[0], no_id=yes_no[1], pad_id=0)
        return float(np.mean([int(np.argmax(s)) == t for s, (_, _, t) in zip(scores, examples, strict=True)]))

    held_out = [example() for _ in range(120)]
    before = accuracy(held_out)
    collate = PadCollator(pad_id=0, choices=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(250):
        rows = []
        for prompt, pool, target in (example() for _ in range(8)):
            rows.append({"input_ids": prompt, "labels": [-100] * len(prompt), "n_letters": 0, "task_id": 0,
                         "prompt_length": len(prompt), "choice_ids": pool, "choice_target": target})
        loss, _, _ = alignment_loss(model, collate(rows), kind="relevance", letter_ids=[], yes_no=yes_no)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = accuracy(held_out)
    assert after >= 0.45, (before, after)
    assert after > before + 0.2, (before, after)


def test_align_build_answer_relevance_pools_are_the_retrievers_and_validation_is_fused(  # type: ignore[no-untyped-def]
        pipeline: Pipeline, tiny_llm: Path, tmp_path: Path, ranker) -> None:
    out = tmp_path / "A"
    refused = run_ulmrec("align", "build", "--data", pipeline.data, "--out", tmp_path / "B", "--candidates",
                         pipeline.candidates, "--model", tiny_llm, "--answer", "relevance", check=False)
    assert refused.returncode == 1
    assert "needs --retriever" in refused.stderr
    assert "Traceback" not in refused.stderr
    ulmrec("align", "build", "--data", pipeline.data, "--out", out, "--index", pipeline.index,
           "--candidates", pipeline.candidates, "--model", tiny_llm, "--tasks", "next_item",
           "--answer", "relevance", "--retriever", pipeline.root / "retrieve",
           "--n-candidates", "8", "--history-items", "4", "--title-tokens", "8", "--no-progress")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["negatives"] == "retriever"                # the default for relevance
    dataset = PreparedDataset.load(pipeline.data)
    builder = PromptBuilder(ranker.tokenizer, PROMPT, titles=dataset.titles())
    from ulmrec_align.retrieval.api import load_retriever

    retriever = load_retriever(pipeline.root / "retrieve")[0]
    train = read_samples(out, "train")
    assert train
    for s in train:
        assert "Candidate pool" not in s.prompt
        assert s.target_letter is None
        assert s.candidates
        assert len(s.candidates) == 8
        assert s.target in s.candidates
        assert s.choices == [builder.title(i) for i in s.candidates]
        history = list(dataset.splits[s.user_id].train)
        expected, expected_scores = [], []
        for t in (t for t in range(1, len(history)) if history[t] == s.target):
            scores = retriever.score_histories([history[:t]])[0].float().clone()
            scores[history[:t]] = -float("inf")
            pool = [int(i) for i in scores.topk(8).indices]           # the retriever's top 8, in its order
            expected.append(pool if s.target in pool else [*pool[:7], s.target])
            expected_scores.append([float(scores[i]) for i in expected[-1]])
        assert s.candidates in expected
        assert s.retriever_scores == pytest.approx(expected_scores[expected.index(s.candidates)], abs=1e-5)
    valid = validation_samples(out, None)
    rows = read_candidates(pipeline.candidates, split="valid")
    assert valid
    for s in valid:
        row = rows[("valid", s.user_id)]
        assert s.candidates == row.candidates[:8]                       # in the retriever's order, unshuffled
        assert s.retriever_scores == row.scores[:8]
    encoded, _ = encode_samples(ranker.tokenizer, train, index_tokens="plain", max_length=512,
                                answer="relevance")
    first = candidate_ids(ranker.tokenizer, train[0].choices or [], "relevance")
    assert encoded.rows[0]["choice_ids"] == first
    validate = ranking_validator(ranker.tokenizer, valid, index_tokens="plain", batch_size=4,
                                 answer="relevance")
    scores = validate(ranker.model)
    assert scores.raw is not None
    assert 0 <= scores.raw <= 1
    assert scores.score >= scores.raw - 1e-12                         # W = 0 is on the grid


def test_rank_train_and_recommend_with_relevance_answers(pipeline: Pipeline, tiny_llm: Path,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path, ranker) -> None:
    dataset = PreparedDataset.load(pipeline.data)
    rows = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[:3]
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles())
    prompts = ranking_prompts(dataset, rows, builder, codes=None)
    ranked = rank_prompts(ranker, prompts, batch_size=2)
    yes_no = relevance_token_ids(ranker.tokenizer)
    for prompt, row in zip(prompts, ranked, strict=True):
        assert "Candidate pool" not in prompt.rendered.text
        ids = encode_prompt(ranker.tokenizer, prompt.rendered.text)
        expected = [log_odds_one_by_one(ranker.model, ids, c, yes_no)
                    for c in candidate_ids(ranker.tokenizer, prompt.choices or [], "relevance")]
        np.testing.assert_allclose(row.scores, expected, rtol=1e-4, atol=1e-4)
        assert row.source.startswith("relevance:")
    rec = Recommender(ranker, dataset)
    history = list(dataset.splits[rows[0].user_id].test_input)
    got = rec.recommend(history=history, candidates=ranked[0].candidates, k=len(ranked[0].candidates))
    assert {r.item_id: r.score for r in got} == pytest.approx(
        dict(zip(ranked[0].candidates, ranked[0].scores, strict=True)), abs=1e-5)
    # the real commands: build, train two steps with the relevance loss, rank fused
    samples, model = tmp_path / "A", tmp_path / "T"
    ulmrec("align", "build", "--data", pipeline.data, "--out", samples, "--candidates", pipeline.candidates,
           "--model", tiny_llm, "--tasks", "next_item", "--answer", "relevance", "--retriever",
           pipeline.root / "retrieve", "--n-candidates", "8", "--history-items", "4",
           "--title-tokens", "8", "--max-users", "12", "--no-progress")
    wrong = run_ulmrec("align", "train", "--samples", samples, "--model", tiny_llm, "--out", tmp_path / "W",
                       "--max-steps", "1", "--no-progress", check=False)
    assert wrong.returncode == 1
    assert "--loss relevance" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    for bad_prior, says in (("-1", "retriever_prior"), ("lots", "--retriever-prior")):
        refused = run_ulmrec("align", "train", "--samples", samples, "--model", tiny_llm, "--out",
                             tmp_path / "W", "--loss", "relevance", "--retriever-prior", bad_prior,
                             check=False)
        assert refused.returncode != 0
        assert says in refused.stderr
        assert "Traceback" not in refused.stderr
    ulmrec("align", "train", "--samples", samples, "--model", tiny_llm, "--out", model, "--max-steps", "2",
           "--loss", "relevance", "--batch-size", "2", "--eval-steps", "2", "--save-steps", "2",
           "--no-progress")
    manifest = json.loads((model / "train_manifest.json").read_text())
    assert manifest["retriever_prior_weight"] is None
    # --retriever-prior auto: β fitted on the validation pools, recorded, and the loss trained with it
    fitted = ulmrec("align", "train", "--samples", samples, "--model", tiny_llm, "--out", tmp_path / "P",
                    "--max-steps", "1", "--loss", "relevance", "--batch-size", "2", "--eval-steps", "1",
                    "--save-steps", "1", "--retriever-prior", "auto", "--no-progress")
    prior_manifest = json.loads((tmp_path / "P" / "train_manifest.json").read_text())
    valid = [s for s in validation_samples(samples, None) if s.target in (s.candidates or [])]
    from ulmrec_align.ranking.fusion import prior_weight

    beta = prior_weight([s.retriever_scores for s in valid], [s.candidates.index(s.target) for s in valid])
    assert prior_manifest["retriever_prior_weight"] == pytest.approx(beta)
    assert f"β = {beta:.4g} (fitted on the validation pools)" in fitted.stderr
    assert manifest["prompt"]["answer"] == "relevance"
    assert manifest["history"]
    assert manifest["history"][-1]["ndcg_at_10_raw"] is not None
    assert manifest["history"][-1]["fusion_weight"] is not None        # W chosen on validation while tuning
    out = tmp_path / "pred.jsonl"
    done = ulmrec("align", "rank", "--model", model, "--data", pipeline.data, "--candidates",
                  pipeline.candidates, "--out", out, "--limit", "20", "--fuse-retriever", "auto",
                  "--retrieved-only", "--no-progress")
    assert "relevance log-odds" in done.stderr
    assert "validation users while tuning" in done.stderr
    ranked_rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(ranked_rows) == 20
    test_rows = read_candidates(pipeline.candidates, split="test")
    assert {r["fusion_weight"] for r in ranked_rows} == {manifest["history"][-1]["fusion_weight"]}
    hit = [r for r in ranked_rows if r["target"] in r["candidates"]]
    missed = [r for r in ranked_rows if r["target"] not in r["candidates"]]
    assert hit
    assert missed                                                      # the tiny retriever misses some
    for r in hit:
        assert r["source"].startswith("fused(w=")
        assert "relevance:" in r["source"]
        assert r["llm_scores"] is not None
    for r in missed:                       # no LLM pass: the retriever's order, which scores 0 all the same
        assert "retriever:target-not-retrieved" in r["source"]
        retrieved = test_rows[("test", r["user_id"])]
        assert r["candidates"] == retrieved.candidates[:8]
        assert np.argsort(-np.asarray(r["scores"]), kind="stable").tolist() == list(range(8))
    bad = run_ulmrec("align", "rank", "--model", model, "--data", pipeline.data, "--candidates",
                     pipeline.candidates, "--out", tmp_path / "g.jsonl", "--method", "generate", check=False)
    assert bad.returncode == 1
    assert "--method logits" in bad.stderr


def test_packed_cached_and_whole_reads_of_a_pool_give_the_same_log_odds(ranker) -> None:  # type: ignore[no-untyped-def]
    """The packed row (sdpa and eager masks), the repeated key/value cache and, for models that keep no
    cache (activation checkpointing), prompt + continuation read whole: one set of numbers, equal to reading
    each candidate alone; an empty continuation scores 0."""
    model = ranker.model

    class NoCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, **kwargs):  # type: ignore[no-untyped-def]
            out = self.inner(**kwargs)
            out.past_key_values = None
            return out

    yes_no = relevance_token_ids(ranker.tokenizer)
    prompt_ids = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]])
    prompt_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    ids = torch.tensor([[[12, 13, 0], [14, 15, 16], [0, 0, 0]], [[17, 0, 0], [18, 19, 0], [20, 0, 0]]])
    mask = (ids > 0).long()
    assert packs_pools(model)
    implementation = model.config._attn_implementation
    with torch.no_grad():
        packed = relevance_logits(model, prompt_ids, prompt_mask, ids, mask, yes_id=yes_no[0],
                                  no_id=yes_no[1])
        cached = cached_relevance_logits(model, prompt_ids, prompt_mask, ids, mask, yes_id=yes_no[0],
                                         no_id=yes_no[1])
        whole = cached_relevance_logits(NoCache(), prompt_ids, prompt_mask, ids, mask, yes_id=yes_no[0],
                                        no_id=yes_no[1])
        other = "eager" if implementation == "sdpa" else "sdpa"
        model.config._attn_implementation = other
        try:
            packed_other = relevance_logits(model, prompt_ids, prompt_mask, ids, mask, yes_id=yes_no[0],
                                            no_id=yes_no[1])
        finally:
            model.config._attn_implementation = implementation
    for got in (cached, whole, packed_other):
        torch.testing.assert_close(packed, got, rtol=1e-4, atol=1e-4)
    assert float(packed[0, 2]) == 0.0
    expected = log_odds_one_by_one(model, [5, 6, 7], [17], yes_no)
    assert float(packed[1, 0]) != pytest.approx(expected)             # row 1's prompt is 8..11, not 5..7
    assert float(packed[0, 0]) == pytest.approx(log_odds_one_by_one(model, [5, 6, 7], [12, 13], yes_no),
                                                abs=1e-4)
    assert float(packed[1, 2]) == pytest.approx(log_odds_one_by_one(model, [8, 9, 10, 11], [20], yes_no),
                                                abs=1e-4)            # after two other candidates in its row


def test_a_packed_pool_hides_every_candidate_from_the_others() -> None:
    tokens, positions, allowed, ends = pack_pools(
        torch.tensor([[0, 0, 3, 4], [5, 6, 7, 8]]), torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]),
        torch.tensor([[[10, 11], [12, 0]], [[13, 0], [0, 0]]]),
        torch.tensor([[[1, 1], [1, 0]], [[1, 0], [0, 0]]]), pad_id=99)
    assert tokens.tolist() == [[3, 4, 10, 11, 12], [5, 6, 7, 8, 13]]
    assert positions.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 3, 4]]
    assert ends.tolist() == [[3, 4], [4, -1]]
    assert allowed[0].int().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0],
                                         [1, 1, 0, 0, 1]]
    assert allowed[1, 4].int().tolist() == [1, 1, 1, 1, 1]


def test_letter_validation_in_the_retrievers_order(pipeline: Pipeline, tiny_llm: Path,
                                                   tmp_path: Path) -> None:
    """``--valid-order retriever`` (the paper's path): validation candidates in the retriever's order, not
    shuffled; the default shuffles them."""
    rows = read_candidates(pipeline.candidates, split="valid")
    orders = {}
    for order in ("retriever", "shuffled"):
        out = tmp_path / order
        ulmrec("align", "build", "--data", pipeline.data, "--out", out, "--candidates", pipeline.candidates,
               "--model", tiny_llm, "--tasks", "next_item", "--n-candidates", "8", "--history-items", "4",
               "--title-tokens", "8", "--max-users", "20", "--valid-order", order, "--no-progress")
        orders[order] = {s.user_id: s.candidates for s in validation_samples(out, None)}
    assert orders["retriever"]
    for user, pool in orders["retriever"].items():
        assert pool == rows[("valid", user)].candidates[:8]
    assert any(orders["shuffled"][u] != pool for u, pool in orders["retriever"].items())


def test_align_build_strip_sizes_reaches_every_title_the_model_reads(pipeline: Pipeline, tiny_llm: Path,
                                                                      tmp_path: Path) -> None:
    from ulmrec_align.prompts.sizes import strip_sizes

    dataset = PreparedDataset.load(pipeline.data)
    sized = [t for t in dataset.titles() if strip_sizes(t) != t]
    assert sized                                                      # the world's titles carry sizes
    out = tmp_path / "S"
    ulmrec("align", "build", "--data", pipeline.data, "--out", out, "--index", pipeline.index,
           "--candidates", pipeline.candidates, "--model", tiny_llm, "--tasks", "next_item",
           "--answer", "relevance", "--retriever", pipeline.root / "retrieve", "--strip-sizes",
           "--n-candidates", "8", "--history-items", "4", "--title-tokens", "64", "--no-progress")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["prompt"]["strip_sizes"] is True           # align rank reads the same titles
    titles = dataset.titles()
    samples = read_samples(out, "train") + read_samples(out, "valid")
    assert samples
    for s in samples:
        assert s.choices == [strip_sizes(titles[i]) for i in s.candidates or []]
    assert not any(t in s.prompt for t in sized for s in samples)   # the history shows them stripped too
