"""Candidate sets: masking of seen items, pool sizes, order options, tie-breaking and their metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.api import build_model, seed_everything
from ulmrec_align.retrieval.base import LRURetriever, Retriever
from ulmrec_align.retrieval.candidates import MASKED, candidate_rows, evaluate_split, top_k
from ulmrec_align.retrieval.config import CandidateConfig, LRURecConfig, RetrieverConfig
from ulmrec_align.retrieval.data import eval_inputs
from ulmrec_eval.metrics import target_ranks


def _retriever(dataset: PreparedDataset) -> LRURetriever:
    seed_everything(0)
    config = RetrieverConfig(model=LRURecConfig(hidden_size=8, max_len=6))
    return LRURetriever(model=build_model(dataset.n_items, config).eval())


class _Popularity:
    """A second Retriever: the same scores for everyone (item id / n), to check the interface is real."""

    kind = "popularity"

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def score_histories(self, histories: list[list[int]]) -> torch.Tensor:
        return torch.arange(self.n_items, dtype=torch.float32).repeat(len(histories), 1) / self.n_items


def test_top_k_orders_by_score_then_item_id() -> None:
    scores = torch.tensor([[0.5, 0.9, 0.5, -torch.inf, 0.1], [1.0, 1.0, 1.0, 1.0, 1.0]])
    ids, values = top_k(scores, 3)
    assert ids.tolist() == [[1, 0, 2], [0, 1, 2]]
    assert values.tolist() == [[pytest.approx(0.9), 0.5, 0.5], [1.0, 1.0, 1.0]]
    ids, _ = top_k(scores, 10)                                           # pool larger than the catalogue
    assert ids.shape == (2, 5)


@pytest.mark.parametrize("pool_size", [1, 5, 20])
@pytest.mark.parametrize("split", ["valid", "test"])
def test_candidates_never_contain_the_input_sequence(tiny: PreparedDataset, pool_size: int,
                                                     split: str) -> None:
    inputs = eval_inputs(tiny.splits, split, max_len=6)  # type: ignore[arg-type]
    result = evaluate_split(_retriever(tiny), inputs, batch_size=7, mask_history=True, pool_size=pool_size)
    assert result.top_items is not None
    assert result.top_scores is not None
    assert result.top_items.shape == (len(inputs), pool_size)
    rows = [r.model_dump() for r in candidate_rows(result, tiny, CandidateConfig(pool_size=pool_size))]
    for row, history in enumerate(inputs.histories):
        # the whole history is masked, also the part beyond max_len that the model does not read
        candidates = rows[row]["candidates"]
        assert not set(candidates) & set(history)
        assert len(set(candidates)) == len(candidates) == min(pool_size, tiny.n_items - len(set(history)))
        assert candidates == [i for i in result.top_items[row].tolist() if i != MASKED]
        assert np.all(np.diff(rows[row]["scores"]) <= 0)
    in_top = (result.top_items == inputs.targets[:, None]).any(axis=1)
    assert result.target_in_top() == pytest.approx(in_top.mean())
    # a target inside the top-k has full rank <= k; one outside has rank > k
    assert np.all((result.ranks <= pool_size) == in_top)


def test_without_masking_seen_items_may_be_proposed(tiny: PreparedDataset) -> None:
    inputs = eval_inputs(tiny.splits, "test", max_len=6)
    result = evaluate_split(_Popularity(tiny.n_items), inputs, batch_size=16, mask_history=False, pool_size=5)
    assert result.top_items is not None
    assert all(row.tolist() == [29, 28, 27, 26, 25] for row in result.top_items)
    masked = evaluate_split(_Popularity(tiny.n_items), inputs, batch_size=16, mask_history=True, pool_size=5)
    assert masked.top_items is not None
    assert not np.array_equal(masked.top_items, result.top_items)


def test_ranks_agree_with_ulmrec_eval_on_full_scores(tiny: PreparedDataset) -> None:
    retriever = _retriever(tiny)
    assert isinstance(retriever, Retriever)
    inputs = eval_inputs(tiny.splits, "valid", max_len=6)
    result = evaluate_split(retriever, inputs, batch_size=5, mask_history=True, pool_size=None)
    scores = retriever.score_histories(inputs.histories)
    for row, history in enumerate(inputs.histories):
        scores[row, list(history)] = -torch.inf
    np.testing.assert_array_equal(result.ranks, target_ranks(scores.numpy(), inputs.targets))
    assert result.metrics((1, 10))["recall@10"] == pytest.approx(float(np.mean(result.ranks <= 10)))


@pytest.mark.parametrize("order", ["score", "shuffled", "item_id"])
def test_candidate_rows_follow_the_configured_order(tiny: PreparedDataset, order: str) -> None:
    inputs = eval_inputs(tiny.splits, "test", max_len=6)
    result = evaluate_split(_retriever(tiny), inputs, batch_size=64, mask_history=True, pool_size=8)
    config = CandidateConfig(pool_size=8, order=order)                  # type: ignore[arg-type]
    rows = [r.model_dump() for r in candidate_rows(result, tiny, config)]
    assert len(rows) == tiny.n_users
    assert result.top_items is not None
    assert result.top_scores is not None
    for index, row in enumerate(rows):
        top, top_scores = result.top_items[index], result.top_scores[index]
        assert sorted(row["candidates"]) == sorted(top.tolist())
        assert row["split"] == "test"
        assert row["raw_user_id"] == tiny.users[row["user_id"]].raw_id
        assert row["target_in_candidates"] == (row["target"] in row["candidates"])
        by_item = dict(zip(row["candidates"], row["scores"], strict=True))
        if order == "score":
            assert row["candidates"] == top.tolist()
        elif order == "item_id":
            assert row["candidates"] == sorted(top.tolist())
        assert all(by_item[i] == pytest.approx(s, abs=1e-5)
                   for i, s in zip(top.tolist(), top_scores.tolist(), strict=True))
    if order == "shuffled":
        again = [r.model_dump() for r in candidate_rows(result, tiny, config)]
        assert again == rows                                             # seeded: reproducible
        assert any(r["candidates"] != t.tolist() for r, t in zip(rows, result.top_items, strict=True))
