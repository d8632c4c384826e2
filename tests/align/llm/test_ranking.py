"""Ranking with a (tiny, random, local) LLM: the predictions are ulmrec-eval predictions of every user, the
logits path scores exactly the training-target letter ids, ``generate`` parses, ``Recommender`` works for
known users, histories and pools larger than the prompt."""

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
from ulmrec_align.prompts.encoding import encode_prompt, letter_token_ids
from ulmrec_align.ranking.loading import load_ranking_model
from ulmrec_align.ranking.ranker import generate_texts, parse_ranking, rank_prompts, ranking_prompts
from ulmrec_align.ranking.recommender import Recommender
from ulmrec_align.ranking.run import rank_split
from ulmrec_align.ranking.scorer import last_logits
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_eval import evaluate
from ulmrec_eval.evaluation import load_predictions
from ulmrec_index.artifact import load_index


@pytest.fixture(scope="module")
def ranker(tiny_llm: Path):  # type: ignore[no-untyped-def]
    return load_ranking_model(tiny_llm, prompt=PromptConfig(n_candidates=8, history_items=4, title_tokens=8))


def test_logits_scores_are_the_letter_logits_of_one_forward_pass(pipeline: Pipeline, ranker) -> None:  # type: ignore[no-untyped-def]
    dataset = PreparedDataset.load(pipeline.data)
    rows = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[:5]
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles())
    prompts = ranking_prompts(dataset, rows, builder, codes=None)
    ranked = rank_prompts(ranker, prompts, batch_size=2)
    letters = letter_token_ids(ranker.tokenizer, 8)
    for prompt, row in zip(prompts, ranked, strict=True):
        ids = torch.tensor([encode_prompt(ranker.tokenizer, prompt.rendered.text)])
        with torch.no_grad():
            expected = ranker.model(input_ids=ids).logits[0, -1, letters].numpy()
        assert row.candidates == prompt.row.candidates[:8]             # retriever order, cut to the letters
        np.testing.assert_allclose(row.scores, expected, rtol=1e-4, atol=1e-4)   # padding changes nothing


def test_left_padding_gives_the_same_logits_as_one_by_one(ranker) -> None:  # type: ignore[no-untyped-def]
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    batched = last_logits(ranker.model, prompts, pad_id=0, batch_size=3)
    single = np.stack([last_logits(ranker.model, [p], pad_id=0, batch_size=1)[0] for p in prompts])
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-4)


def test_rank_split_rows_are_eval_predictions_of_every_user(pipeline: Pipeline, ranker,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    dataset = PreparedDataset.load(pipeline.data)
    rows = read_candidates(pipeline.candidates)
    index = load_index(pipeline.index)
    ranked = rank_split(ranker, dataset, rows, index=index, split="test", batch_size=4)
    assert len(ranked) == dataset.n_users
    out = tmp_path / "p.jsonl"
    from ulmrec_align.ranking.run import write_rankings

    write_rankings(out, ranked)
    predictions = load_predictions(out, split="test")
    assert {r.retrieved_n for r in ranked} == {len(ranked[0].candidates)}
    result = evaluate(predictions, ks=(1, 5))      # the rows say which top-N the LLM re-ranked
    subset = result.scope("subset")
    assert subset.retrieved_n == len(ranked[0].candidates)
    assert subset.n_users == sum(r.target in r.candidates for r in ranked)
    assert result.scope("overall").n_users == dataset.n_users


def test_generate_parses_letters_in_order() -> None:
    assert parse_ranking("B, A, C", 3) == [1, 0, 2]
    assert parse_ranking("(D) then A", 3) == [0]
    assert parse_ranking("no letters here", 3) == []


class ScriptedLM(torch.nn.Module):
    """A stand-in causal LM whose greedy ``generate`` emits a fixed answer per prompt (looked up by the
    prompt's ids, padding removed), so the generate path is judged on answers that do list letters."""

    def __init__(self, answers: dict[tuple[int, ...], list[int]], pad_id: int) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))   # model_device() reads the parameters' device
        self.answers, self.pad_id = answers, pad_id

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                 **_: object) -> torch.Tensor:
        new = [self.answers[tuple(ids[mask.bool()].tolist())][:max_new_tokens]
               for ids, mask in zip(input_ids, attention_mask, strict=True)]
        width = max(len(a) for a in new)
        tail = torch.tensor([a + [self.pad_id] * (width - len(a)) for a in new], dtype=input_ids.dtype)
        return torch.cat([input_ids, tail], dim=1)


def test_generate_ranks_listed_letters_first_in_order_and_the_rest_last(pipeline: Pipeline, ranker) -> None:  # type: ignore[no-untyped-def]
    from ulmrec_align.ranking.ranker import RankingModel

    dataset = PreparedDataset.load(pipeline.data)
    rows = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[:4]
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles())
    prompts = ranking_prompts(dataset, rows, builder, codes=None)
    assert all(len(p.candidates) == 8 for p in prompts)
    tok = ranker.tokenizer
    # what each user's model "answers": letters past H (n = 8) and repeats are ignored by the parser
    texts = ["C, A, E", "B", "H,G,F,E,D,C,B,A", "D, Z, D, B"]   # the full list fits 2n + 2 tokens
    listed = [[2, 0, 4], [1], [7, 6, 5, 4, 3, 2, 1, 0], [3, 1]]
    encoded = [tuple(encode_prompt(tok, p.rendered.text, p.rendered.spans, index_tokens=ranker.index_tokens))
               for p in prompts]
    assert len(set(encoded)) == len(encoded)
    answers = {ids: [*tok.encode(text, add_special_tokens=False), int(tok.eos_token_id)]
               for ids, text in zip(encoded, texts, strict=True)}
    scripted = RankingModel(model=ScriptedLM(answers, int(tok.pad_token_id or 0)), tokenizer=tok,
                            prompt=ranker.prompt, index_tokens=ranker.index_tokens, name="scripted")
    ranked = rank_prompts(scripted, prompts, method="generate", batch_size=3)   # batches of unequal lengths
    for row, prompt, order in zip(ranked, prompts, listed, strict=True):
        assert row.candidates == prompt.candidates
        assert row.source == "generate:scripted"
        scores = row.scores
        # the listed letters, in the model's order, score highest: n, n - 1, ...
        assert [scores[j] for j in order] == [8.0 - place for place in range(len(order))]
        unlisted = [scores[j] for j in range(8) if j not in order]
        assert all(value == 0.0 for value in unlisted)                  # the rest: tied, last
        assert all(scores[j] > max(unlisted, default=-1.0) for j in order)
        assert row.parsed == (len(order) == 8)
    # and as a ranking, through ulmrec-eval: the first listed letter is the top item
    best = [row.candidates[int(np.argmax(row.scores))] for row in ranked]
    assert best == [prompt.candidates[order[0]] for prompt, order in zip(prompts, listed, strict=True)]


def test_generate_runs_a_real_model(pipeline: Pipeline, ranker) -> None:  # type: ignore[no-untyped-def]
    """The plumbing with a real (tiny, random) model: its greedy text, parsed, gives the scores. It emits no
    letters, so what the scores mean is checked with the scripted model above."""
    dataset = PreparedDataset.load(pipeline.data)
    rows = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[:3]
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles())
    prompts = ranking_prompts(dataset, rows, builder, codes=None)
    ranked = rank_prompts(ranker, prompts, method="generate", batch_size=3)
    encoded = [encode_prompt(ranker.tokenizer, p.rendered.text) for p in prompts]
    texts = generate_texts(ranker, encoded, max_new_tokens=2 * 8 + 2, batch_size=1)
    for row, text in zip(ranked, texts, strict=True):
        n = len(row.candidates)
        listed = parse_ranking(text, n)
        expected = [0.0] * n
        for place, position in enumerate(listed):
            expected[position] = float(n - place)
        assert row.scores == expected
        assert row.parsed == (len(listed) == n)


def test_recommender_known_user_history_and_large_pool(pipeline: Pipeline, tiny_llm: Path) -> None:
    rec = Recommender.load(tiny_llm, data=pipeline.data, index=pipeline.index,
                           retriever=pipeline.candidates.parent)
    dataset = rec.dataset
    raw = dataset.users[0].raw_id
    top = rec.recommend(user_id=raw, k=5)
    assert len(top) == 5
    assert not {r.item_id for r in top} & set(dataset.sequences[0].items)   # the history is masked
    assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)
    pool = list(range(dataset.n_items))[:45]                                  # > 20 letters: in chunks
    many = rec.recommend(history=[dataset.items[3].raw_id, 5], candidates=pool, k=45)
    assert sorted(r.item_id for r in many) == pool
    with pytest.raises(Exception, match="unknown user"):
        rec.recommend(user_id="nobody")


def test_recommender_with_letter_orders_matches_the_ranker(pipeline: Pipeline, tiny_llm: Path) -> None:
    """Recommender(permutations=3) scores a pool exactly as `align rank --permutations 3` scores it."""
    rec = Recommender.load(tiny_llm, data=pipeline.data, permutations=3)
    dataset = rec.dataset
    row = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[0]
    pool = list(row.candidates[: rec.ranker.prompt.n_candidates])
    history = list(dataset.splits[row.user_id].test_input)
    got = rec.recommend(history=history, candidates=pool, k=len(pool))
    builder = PromptBuilder(rec.ranker.tokenizer, rec.ranker.prompt, titles=dataset.titles())
    [ranked] = rank_prompts(rec.ranker, ranking_prompts(dataset, [row], builder, codes=None, permutations=3))
    expected = dict(zip(ranked.candidates, ranked.scores, strict=True))
    assert {r.item_id: r.score for r in got} == pytest.approx(expected, abs=1e-5)
    with pytest.raises(Exception, match="at least 1"):
        Recommender(rec.ranker, dataset, permutations=0)


def test_cli_rank_writes_predictions_that_eval_reads(pipeline: Pipeline, tiny_llm: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "rank.jsonl"
    proc = ulmrec("align", "rank", "--model", tiny_llm, "--data", pipeline.data, "--index", pipeline.index,
                  "--candidates", pipeline.candidates, "--split", "valid", "--out", out, "--limit", "6",
                  "--no-progress")
    assert "ranked 6 users" in proc.stderr
    metrics = json.loads(ulmrec("eval", "metrics", out, "--split", "valid", "--json").stdout)
    assert [r["scope"] for r in metrics["reports"]] == ["subset", "overall"]
    orders = tmp_path / "rank-orders.jsonl"
    proc = ulmrec("align", "rank", "--model", tiny_llm, "--data", pipeline.data, "--index", pipeline.index,
                  "--candidates", pipeline.candidates, "--split", "valid", "--out", orders, "--limit", "2",
                  "--permutations", "3", "--no-progress")
    assert "ranked 2 users (logits, 3 letter orders)" in proc.stderr
    rows = [json.loads(line) for line in orders.read_text().splitlines()]
    assert [r["source"].split(":")[0] for r in rows] == ["logitsx3", "logitsx3"]
    assert all(max(r["scores"]) <= 0 for r in rows)        # mean log-probabilities


def test_letter_orders_show_every_candidate_at_every_letter_when_k_is_n() -> None:
    from ulmrec_align.ranking.ranker import letter_orders

    orders = letter_orders(5, 5)
    assert orders[0] == (0, 1, 2, 3, 4)                          # the retriever's order first
    for candidate in range(5):
        assert sorted(order.index(candidate) for order in orders) == [0, 1, 2, 3, 4]
    assert len(letter_orders(3, 8)) == 3                         # never more orders than distinct shifts
    with pytest.raises(ValueError, match="at least 1"):
        letter_orders(3, 0)


def test_averaging_letter_orders_cancels_a_letter_bias() -> None:
    """A scorer that adds a large bias to letter A (as a tuned model that learned 'the retriever's top-1')
    ranks by letter with one order, and by the items' own value once the orders are averaged."""
    from ulmrec_align.ranking.ranker import letter_orders, merge_letter_orders

    value = np.array([0.1, 0.9, 0.5, 0.3])          # the item preference the model has learned
    bias = np.array([3.0, 1.0, 0.0, -1.0])           # its preference for early letters

    def letter_scores(order: tuple[int, ...]) -> list[float]:
        return [float(bias[j] + value[order[j]]) for j in range(4)]

    single = merge_letter_orders([letter_scores((0, 1, 2, 3))], [(0, 1, 2, 3)], log_softmax=True)
    assert int(np.argmax(single)) == 0               # the bias wins: candidate A
    orders = letter_orders(4, 4)
    merged = merge_letter_orders([letter_scores(o) for o in orders], orders, log_softmax=True)
    assert list(np.argsort(merged)[::-1]) == [1, 2, 3, 0]
    np.testing.assert_allclose(np.array(merged) - np.array(merged).mean(), value - value.mean(), atol=1e-12)


def test_rank_with_letter_orders_averages_the_log_probabilities_of_each_order(  # type: ignore[no-untyped-def]
        pipeline: Pipeline, ranker) -> None:
    dataset = PreparedDataset.load(pipeline.data)
    rows = sorted(read_candidates(pipeline.candidates, split="test").values(), key=lambda r: r.user_id)[:3]
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles())
    prompts = ranking_prompts(dataset, rows, builder, codes=None, permutations=3)
    assert len(prompts) == 9
    ranked = rank_prompts(ranker, prompts, batch_size=4)
    assert len(ranked) == 3
    letters = letter_token_ids(ranker.tokenizer, 8)
    for r, row in enumerate(ranked):
        mine = prompts[3 * r: 3 * r + 3]
        assert row.candidates == rows[r].candidates[:8]
        assert row.source.startswith("logitsx3:")
        expected = np.zeros(len(row.candidates))
        for prompt in mine:
            assert prompt.shown is not None
            shown_items = [row.candidates[i] for i in prompt.shown]
            assert prompt.shown != mine[0].shown or prompt is mine[0]   # three distinct orders
            for j, item in enumerate(shown_items):       # letter j shows the candidate the order says
                assert f"({chr(65 + j)}) {builder.title(item)}" in prompt.rendered.text
            ids = torch.tensor([encode_prompt(ranker.tokenizer, prompt.rendered.text)])
            with torch.no_grad():
                logits = ranker.model(input_ids=ids).logits[0, -1, letters][: len(row.candidates)]
            log_probs = torch.log_softmax(logits.double(), dim=0).numpy()
            for letter, candidate in enumerate(prompt.shown):
                expected[candidate] += log_probs[letter] / 3
        np.testing.assert_allclose(row.scores, expected, rtol=1e-4, atol=1e-4)


def test_rank_rows_say_whether_the_user_was_held_out_of_training() -> None:
    """A model tuned with --cold-share marks each row cold or not by the same rule as the build; a model
    that held none out leaves the field empty."""
    from ulmrec_align.prompts.config import PromptConfig
    from ulmrec_align.ranking.loading import cold_start_of
    from ulmrec_align.ranking.ranker import RankingModel
    from ulmrec_eval.cold_start import is_cold

    assert cold_start_of({"cold_share": 0.3, "cold_seed": 2}) == (0.3, 2)
    assert cold_start_of({"cold_share": 0.0}) is None
    assert cold_start_of({}) is None
    held = RankingModel(model=None, tokenizer=None, prompt=PromptConfig(), index_tokens="plain", name="m",
                        cold_start=(0.3, 2))
    users = [f"U{i}" for i in range(40)]
    assert [held.is_cold(u) for u in users] == [is_cold(u, 0.3, seed=2) for u in users]
    assert any(held.is_cold(u) for u in users)
    none = RankingModel(model=None, tokenizer=None, prompt=PromptConfig(), index_tokens="plain", name="m")
    assert none.is_cold("U1") is None
