"""Hypothesis properties of the metrics: bounds, monotonicity in K, user-order invariance, saturation."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ulmrec_eval import metrics as M

sys.path.insert(0, str(Path(__file__).parent))
from eval_reference import ref_metrics, ref_rank

FAST = settings(max_examples=60, deadline=None)


@st.composite
def scored_users(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n_users = draw(st.integers(1, 12))
    n_items = draw(st.integers(1, 15))
    # few distinct values, so that ties are common; -inf marks masked items
    values = st.sampled_from([-np.inf, -1.0, 0.0, 0.25, 0.5, 1.0, 3.0])
    scores = draw(hnp.arrays(np.float64, (n_users, n_items), elements=values))
    targets = draw(hnp.arrays(np.int64, (n_users,), elements=st.integers(0, n_items - 1)))
    return scores, targets


ranks_strategy = hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 30))
ks_strategy = st.lists(st.integers(1, 35), min_size=1, max_size=5)


@FAST
@given(scored_users())
def test_ranks_match_reference_sort(data: tuple[np.ndarray, np.ndarray]) -> None:
    scores, targets = data
    expected = [ref_rank(row.tolist(), int(t)) for row, t in zip(scores, targets, strict=True)]
    assert M.target_ranks(scores, targets).tolist() == expected


@FAST
@given(ranks_strategy, ks_strategy)
def test_values_in_unit_interval_and_match_reference(ranks: np.ndarray, ks: list[int]) -> None:
    out = M.compute_metrics(ranks, ks)
    assert all(0.0 <= value <= 1.0 for value in out.values())
    for k in ks:
        for key, value in ref_metrics(ranks.tolist(), k).items():
            assert abs(out[key] - value) <= 1e-9


@FAST
@given(ranks_strategy)
def test_monotone_in_k(ranks: np.ndarray) -> None:
    ks = list(range(1, 32))
    out = M.compute_metrics(ranks, ks)
    for name in M.METRIC_NAMES:
        series = [out[f"{name}@{k}"] for k in ks]
        assert all(a <= b + 1e-15 for a, b in itertools.pairwise(series))
    # and the ordering between metrics: NDCG and MRR never exceed Recall, MRR never exceeds NDCG
    for k in ks:
        assert out[f"mrr@{k}"] <= out[f"ndcg@{k}"] + 1e-15 <= out[f"recall@{k}"] + 2e-15


@FAST
@given(ranks_strategy, st.randoms(use_true_random=False))
def test_invariant_to_user_order(ranks: np.ndarray, random: object) -> None:
    permuted = ranks.copy()
    random.shuffle(permuted)  # type: ignore[attr-defined]
    a = M.compute_metrics(ranks, (1, 5, 10))
    b = M.compute_metrics(permuted, (1, 5, 10))
    assert all(abs(a[key] - b[key]) <= 1e-12 for key in a)


@FAST
@given(scored_users(), st.randoms(use_true_random=False))
def test_scores_invariant_to_user_order(data: tuple[np.ndarray, np.ndarray], random: object) -> None:
    scores, targets = data
    order = list(range(len(targets)))
    random.shuffle(order)  # type: ignore[attr-defined]
    shuffled = M.target_ranks(scores[order], targets[order])
    assert shuffled.tolist() == M.target_ranks(scores, targets)[order].tolist()


@FAST
@given(scored_users())
def test_recall_is_one_when_k_covers_all_candidates(data: tuple[np.ndarray, np.ndarray]) -> None:
    scores, targets = data
    ranks = M.target_ranks(scores, targets)
    n_items = scores.shape[1]
    assert ranks.min() >= 1
    assert ranks.max() <= n_items
    for k in (n_items, n_items + 1, 10 * n_items):
        assert M.recall_at_k(ranks, k) == 1.0


@FAST
@given(st.integers(2, 30), st.integers(1, 20), st.floats(-1e6, 1e6, allow_nan=False))
def test_constant_scorer_never_scores_one(n_items: int, n_users: int, value: float) -> None:
    scores = np.full((n_users, n_items), value)
    targets = np.arange(n_users) % n_items
    out = M.compute_metrics(M.target_ranks(scores, targets), ks=range(1, n_items))
    assert all(v == 0.0 for v in out.values())


@FAST
@given(scored_users())
def test_raising_the_target_never_hurts(data: tuple[np.ndarray, np.ndarray]) -> None:
    scores, targets = data
    before = M.target_ranks(scores, targets)
    better = scores.copy()
    rows = np.arange(len(targets))
    better[rows, targets] = np.where(np.isfinite(better[rows, targets]), better[rows, targets] + 0.1, 0.0)
    assert (M.target_ranks(better, targets) <= before).all()
