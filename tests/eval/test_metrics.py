"""Metrics: hand-computed cases, agreement with the independent reference, ties, masking and bad input."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ulmrec_eval import metrics as M

sys.path.insert(0, str(Path(__file__).parent))
from eval_reference import ref_metrics, ref_rank, ref_rank_in_list


# ------------------------------------------------------------------------------------------ hand-computed
def test_hand_computed_ranks_and_metrics() -> None:
    scores = np.array([
        [0.9, 0.1, 0.5, 0.3],   # target 0 is best -> rank 1
        [0.9, 0.1, 0.5, 0.3],   # target 2 -> rank 2
        [0.2, 0.2, 0.2, 0.2],   # constant -> pessimistic rank 4
        [0.4, 0.7, 0.7, 0.1],   # target 2 ties with column 1 -> rank 2
    ])
    ranks = M.target_ranks(scores, np.array([0, 2, 1, 2]))
    assert ranks.tolist() == [1, 2, 4, 2]
    # Recall@1 = 1/4, Recall@2 = 3/4, Recall@4 = 1
    assert M.recall_at_k(ranks, 1) == 0.25
    assert M.recall_at_k(ranks, 2) == 0.75
    assert M.recall_at_k(ranks, 4) == 1.0
    # MRR@2 = (1 + 1/2 + 0 + 1/2) / 4 = 0.5 ; MRR@4 = (1 + 1/2 + 1/4 + 1/2) / 4 = 0.5625
    assert M.mrr_at_k(ranks, 2) == 0.5
    assert M.mrr_at_k(ranks, 4) == 0.5625
    # NDCG@4 = (1 + 1/log2(3) + 1/log2(5) + 1/log2(3)) / 4
    expected = (1 + 2 / math.log2(3) + 1 / math.log2(5)) / 4
    assert M.ndcg_at_k(ranks, 4) == pytest.approx(expected, abs=1e-15)


def test_ndcg_values_by_rank() -> None:
    assert M.ndcg_at_k_per_user([1, 2, 3, 7, 8, 0], 10).tolist() == pytest.approx(
        [1.0, 1 / math.log2(3), 0.5, 1 / 3, 1 / math.log2(9), 0.0], abs=1e-15)


def test_compute_metrics_keys_and_values() -> None:
    out = M.compute_metrics([1, 2, 0, 6], ks=(5, 1))
    assert list(out) == ["recall@1", "recall@5", "mrr@1", "mrr@5", "ndcg@1", "ndcg@5"]
    assert out["recall@5"] == 0.5
    assert out["mrr@5"] == pytest.approx((1 + 0.5) / 4)
    assert out["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert out["recall@1"] == out["mrr@1"] == out["ndcg@1"] == 0.25


def test_miss_never_counts() -> None:
    assert M.compute_metrics([0, 0, 0], ks=(1, 100)) == dict.fromkeys(
        ["recall@1", "recall@100", "mrr@1", "mrr@100", "ndcg@1", "ndcg@100"], 0.0)


def test_constant_scorer_never_perfect() -> None:
    scores = np.zeros((50, 20))
    targets = np.arange(50) % 20
    ranks = M.target_ranks(scores, targets)
    assert (ranks == 20).all()
    assert M.recall_at_k(ranks, 19) == 0.0
    assert M.recall_at_k(ranks, 20) == 1.0  # K >= candidates: every target is inside


# --------------------------------------------------------------------------------------------- reference
@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_reference_on_random_scores_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 37
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float64)  # many ties
    scores[rng.random(scores.shape) < 0.1] = -np.inf                         # some masked
    targets = rng.integers(0, n_items, size=n_users)
    ranks = M.target_ranks(scores, targets)
    expected = [ref_rank(scores[u].tolist(), int(targets[u])) for u in range(n_users)]
    assert ranks.tolist() == expected
    ks = (1, 3, 5, 10, 20, 37, 50)
    got = M.compute_metrics(ranks, ks)
    for k in ks:
        ref = ref_metrics(expected, k)
        for key, value in ref.items():
            assert abs(got[key] - value) <= 1e-9, key
            name = key.split("@")[0]
            single = {"recall": M.recall_at_k, "mrr": M.mrr_at_k, "ndcg": M.ndcg_at_k}[name](ranks, k)
            assert abs(single - value) <= 1e-9, key


def test_chunking_does_not_change_ranks() -> None:
    rng = np.random.default_rng(7)
    scores = rng.random((1000, 53)).astype(np.float32)
    targets = rng.integers(0, 53, size=1000)
    whole = M.target_ranks(scores, targets, chunk_cells=10**9)
    for cells in (1, 53, 54, 500, 7919):
        assert np.array_equal(M.target_ranks(scores, targets, chunk_cells=cells), whole)


def test_ranks_from_lists_matches_reference() -> None:
    rng = np.random.default_rng(3)
    lists = [rng.permutation(30)[: rng.integers(0, 30)].tolist() for _ in range(200)]
    targets = rng.integers(0, 30, size=200).tolist()
    expected = [ref_rank_in_list(items, t) for items, t in zip(lists, targets, strict=True)]
    assert M.ranks_from_lists(lists, targets).tolist() == expected
    # the (U, L) array path agrees with the list path on equal-length lists
    fixed = np.stack([rng.permutation(30)[:10] for _ in range(200)])
    assert np.array_equal(M.ranks_from_lists(fixed, np.array(targets)),
                          M.ranks_from_lists(fixed.tolist(), targets))


def test_ranks_from_lists_string_ids_and_duplicates() -> None:
    ranks = M.ranks_from_lists([["a", "b", "a"], ("x",), ["b", "c"]], ["a", "y", "c"])
    assert ranks.tolist() == [1, 0, 2]


def test_ranks_from_candidates_variable_lengths() -> None:
    cands = [[10, 11, 12], [7, 8], [1, 2, 3, 4], [5]]
    scores = [[0.2, 0.9, 0.2], [1.0, 0.0], [-np.inf, -np.inf, 0.1, -np.inf], [0.3]]
    targets = [12, 9, 1, 5]
    # 12 ties with 10 -> 3 ; 9 absent -> miss ; 1 is masked: behind 3, tied with 2 and 4 -> 4 ; only one -> 1
    assert M.ranks_from_candidates(cands, scores, targets).tolist() == [3, 0, 4, 1]


def test_ranks_from_candidates_chunked_and_array_paths_agree_with_reference() -> None:
    rng = np.random.default_rng(11)
    cands, scores, targets, expected = [], [], [], []
    for _ in range(300):
        n = int(rng.integers(1, 40))
        items = rng.choice(1000, size=n, replace=False).tolist()
        values = rng.integers(0, 4, size=n).astype(float).tolist()   # many ties
        target = items[int(rng.integers(n))] if rng.random() < 0.8 else 5000
        cands.append(items)
        scores.append(values)
        targets.append(target)
        expected.append(ref_rank(values, items.index(target)) if target in items else 0)
    for cells in (1, 37, 100, 10**6):
        assert M.ranks_from_candidates(cands, scores, targets, chunk_cells=cells).tolist() == expected
    # (U, L) arrays go through the vectorised path
    c = np.stack([rng.permutation(50)[:20] for _ in range(100)])
    sc = rng.integers(0, 5, size=(100, 20)).astype(np.float32)
    t = np.where(rng.random(100) < 0.7, c[:, 3], 99)
    want = M.ranks_from_candidates(c.tolist(), sc.tolist(), t.tolist())
    assert np.array_equal(M.ranks_from_candidates(c, sc, t), want)


def test_ranks_from_candidates_nan_names_the_user_row() -> None:
    lists = [[1, 2]] * 5
    scores = [[0.1, 0.2]] * 4 + [[0.1, float("nan")]]
    with pytest.raises(ValueError, match="user row 4"):
        M.ranks_from_candidates(lists, scores, [1] * 5, chunk_cells=4)
    with pytest.raises(ValueError, match="user row 4"):
        M.ranks_from_candidates(np.array(lists), np.array(scores), np.ones(5, dtype=int))


# ----------------------------------------------------------------------------------------------- masking
def test_masked_items_are_never_above_a_finite_target() -> None:
    scores = np.array([[-np.inf, 0.5, -np.inf, -np.inf, 0.7]])
    assert M.target_ranks(scores, [1]).tolist() == [2]
    # a masked target ties with every masked item and ranks last
    assert M.target_ranks(scores, [0]).tolist() == [5]


def test_integer_and_float32_scores() -> None:
    assert M.target_ranks(np.array([[3, 1, 2]], dtype=np.int32), [2]).tolist() == [2]
    assert M.target_ranks(np.array([[0.5, 0.5]], dtype=np.float32), [0]).tolist() == [2]


# -------------------------------------------------------------------------------------------- bad input
def test_nan_scores_are_rejected() -> None:
    scores = np.array([[0.1, 0.2], [np.nan, 0.3]])
    with pytest.raises(ValueError, match="NaN score for user row 1"):
        M.target_ranks(scores, [0, 1])


@pytest.mark.parametrize(("scores", "targets", "message"), [
    (np.zeros(3), [0], "2-D"),
    (np.zeros((2, 3)), [0], "one entry per user"),
    (np.zeros((1, 3)), [3], "out of range"),
    (np.zeros((1, 3)), [-1], "out of range"),
    (np.zeros((1, 3)), [0.5], "integer"),
    (np.zeros((1, 0)), [0], "no columns"),
])
def test_bad_shapes_and_targets(scores: np.ndarray, targets: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        M.target_ranks(scores, np.asarray(targets))


def test_bad_ranks_and_k() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        M.recall_at_k([1, -2], 5)
    with pytest.raises(ValueError, match="positive integer"):
        M.mrr_at_k([1, 2], 0)
    with pytest.raises(ValueError, match="no users"):
        M.ndcg_at_k([], 5)
    with pytest.raises(ValueError, match="whole numbers"):
        M.recall_at_k([1.5], 5)
    with pytest.raises(ValueError, match="no users"):
        M.compute_metrics([])


def test_empty_user_set_gives_empty_ranks() -> None:
    assert M.target_ranks(np.zeros((0, 5)), np.zeros(0, dtype=np.int64)).shape == (0,)


@pytest.mark.parametrize(("key", "parsed"), [
    ("ndcg@10", ("ndcg", 10)), ("Recall@5", ("recall", 5)), ("hit@20", ("recall", 20)), ("mrr@1", ("mrr", 1)),
])
def test_parse_metric_key(key: str, parsed: tuple[str, int]) -> None:
    assert M.parse_metric_key(key) == parsed


@pytest.mark.parametrize("key", ["ndcg", "ndcg@0", "map@10", "ndcg@x", "@5"])
def test_parse_metric_key_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        M.parse_metric_key(key)


# ------------------------------------------------------------------- found by mutation testing (issue 27)
# Each test below fails on a change to metrics.py that every other test let through (bench/mutation.py;
# docs/mutation.md lists the mutants that remain and why they are harmless).
@pytest.mark.parametrize("targets", [[0, -1, 2], [-1, 0, 0], [0, 4, 1], [4, 0, 0]])
def test_a_target_out_of_range_anywhere_in_the_batch_is_refused(targets: list[int]) -> None:
    with pytest.raises(ValueError, match="out of range"):
        M.target_ranks(np.zeros((3, 4)), np.array(targets))


def test_boolean_scores_are_ranked_and_non_numeric_scores_refused() -> None:
    scores = np.array([[True, False, True]])
    assert M.target_ranks(scores, [1]).tolist() == [3]
    assert M.target_ranks(scores, [0]).tolist() == [2]
    with pytest.raises(ValueError, match="numeric"):
        M.target_ranks(np.array([["b", "a"]]), [0])


def test_ranked_arrays_with_one_column_or_none() -> None:
    one = np.array([[7], [8], [9]])
    assert M.ranks_from_lists(one, np.array([7, 1, 9])).tolist() == [1, 0, 1]
    none = np.zeros((3, 0), dtype=np.int64)
    assert M.ranks_from_lists(none, np.array([7, 1, 9])).tolist() == [0, 0, 0]


def test_ragged_object_arrays_are_ranked_like_lists() -> None:
    def ragged(rows: list[list[float]]) -> np.ndarray:
        out = np.empty(len(rows), dtype=object)
        out[:] = rows
        return out

    lists = [[5, 3, 9], [1, 2], [4]]
    assert M.ranks_from_lists(ragged(lists), [9, 7, 4]).tolist() == [3, 0, 1]
    scores = [[0.1, 0.9, 0.1], [0.5, 0.5], [0.2]]
    want = M.ranks_from_candidates(lists, scores, [9, 2, 4]).tolist()
    assert want == [3, 2, 1]
    assert M.ranks_from_candidates(ragged(lists), ragged(scores), [9, 2, 4]).tolist() == want


def test_array_candidates_find_a_target_in_the_first_column() -> None:
    cands = np.array([[4, 5, 6], [7, 8, 9], [1, 2, 3]])
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5], [0.2, 0.2, 0.2]])
    assert M.ranks_from_candidates(cands, scores, np.array([4, 7, 1])).tolist() == [1, 3, 3]
    assert M.ranks_from_candidates(cands.tolist(), scores.tolist(), [4, 7, 1]).tolist() == [1, 3, 3]


@pytest.mark.parametrize(("ranked", "targets"), [
    ([[1, 2], [3]], ["1", "3"]),            # strings among integers
    ([[True, False]], [1]),                 # an integer among booleans
    ([[1.0, 2.0]], [1]),                    # an integer among floats
])
def test_targets_of_another_id_kind_are_refused(ranked: list[list[object]], targets: list[object]) -> None:
    with pytest.raises(ValueError, match="same type"):
        M.ranks_from_lists(ranked, targets)


def test_candidate_blocks_stay_within_chunk_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists are padded into blocks of at most ``chunk_cells`` cells, as large as that allows."""
    seen: list[tuple[int, ...]] = []
    real = M.target_ranks

    def spy(scores: np.ndarray, targets: np.ndarray, **kw: int) -> np.ndarray:
        seen.append(np.shape(scores))
        return real(scores, targets, **kw)

    monkeypatch.setattr(M, "target_ranks", spy)
    cands = [list(range(n)) for n in (3, 5, 2, 4, 4, 1, 5, 3)]
    scores = [[float(j % 3) for j in range(len(c))] for c in cands]
    targets = [c[-1] for c in cands]
    want = [ref_rank(s, len(s) - 1) for s in scores]
    for cells in (5, 10, 12, 40):
        seen.clear()
        assert M.ranks_from_candidates(cands, scores, targets, chunk_cells=cells).tolist() == want
        assert all(rows * width <= cells for rows, width in seen), (cells, seen)
        assert sum(rows for rows, _ in seen) == len(cands)
    seen.clear()
    M.ranks_from_candidates(cands, scores, targets, chunk_cells=8 * 5)   # exactly fits: one block
    assert seen == [(8, 5)]
    seen.clear()
    M.ranks_from_candidates(cands, scores, targets, chunk_cells=10)      # greedy: [3, 5] fills 10 cells, ...
    assert seen == [(2, 5), (2, 4), (2, 4), (2, 5)]
    seen.clear()
    M.ranks_from_candidates([[1]], [[0.5]], [1], chunk_cells=1)          # a one-item list: a 1-cell block
    assert seen == [(1, 1)]


def test_rank_inputs_whole_floats_accepted_and_the_rest_refused() -> None:
    assert M.compute_metrics(np.array([1.0, 3.0, 0.0]), ks=5) == M.compute_metrics([1, 3, 0], ks=5)
    for bad in (np.array([True, False]), np.array(["1"]), np.array([1.0, np.inf]), np.array([1.0, np.nan])):
        with pytest.raises(ValueError, match="whole numbers"):
            M.recall_at_k(bad, 5)
    with pytest.raises(ValueError, match="no users"):                     # empty, whatever its dtype
        M.compute_metrics(np.array([], dtype=object))


def test_cut_offs_one_int_or_positive_integers() -> None:
    assert M.normalise_ks(10) == (10,)
    assert list(M.compute_metrics([1, 2], ks=5)) == ["recall@5", "mrr@5", "ndcg@5"]
    for bad in (1.5, "5", [5, 2.5], [True], [0, 5], [], True):
        with pytest.raises(ValueError, match="cut-offs"):
            M.normalise_ks(bad)  # type: ignore[arg-type]
