"""Paired comparison: exact p-values by enumeration, bootstrap against a naive bootstrap, pairing by user."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from ulmrec_eval.compare import (
    bootstrap_interval,
    bootstrap_means,
    compare_predictions,
    paired_comparison,
    randomisation_p_value,
)
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.schemas import RankedPrediction


def exact_sign_flip_p(d: np.ndarray) -> float:
    """Exact two-sided sign-flip p-value: the share of all 2^m sign patterns at least as extreme."""
    nonzero = d[d != 0]
    observed = abs(nonzero.sum())
    count = 0
    for signs in itertools.product((-1.0, 1.0), repeat=nonzero.size):
        count += abs(np.dot(signs, nonzero)) >= observed - 1e-12
    return count / 2 ** nonzero.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_p_value_matches_exact_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random(40)
    b = a.copy()
    changed = rng.choice(40, size=11, replace=False)  # 29 users tie: only the 11 changed ones matter
    b[changed] += rng.normal(0.15, 0.3, size=11)
    exact = exact_sign_flip_p(b - a)
    p = randomisation_p_value(a, b, n_resamples=20_000, seed=seed)
    assert abs(p - exact) < 0.015, (p, exact)


def test_bootstrap_matches_naive_bootstrap() -> None:
    rng = np.random.default_rng(5)
    d = np.where(rng.random(3000) < 0.2, rng.normal(0.05, 0.5, size=3000), 0.0)  # mostly ties
    fast = bootstrap_means(d, n_resamples=4000, rng=np.random.default_rng(1))
    idx = np.random.default_rng(2).integers(0, d.size, size=(4000, d.size))
    naive = d[idx].mean(axis=1)
    assert fast.mean() == pytest.approx(naive.mean(), abs=0.002)
    assert fast.std() == pytest.approx(naive.std(), rel=0.06)
    assert fast.std() == pytest.approx(d.std() / np.sqrt(d.size), rel=0.06)  # the textbook standard error


def test_identical_systems() -> None:
    values = np.linspace(0, 1, 100)
    c = paired_comparison(values, values, metric="ndcg@10", n_resamples=500)
    assert c.difference == 0.0
    assert (c.ci_low, c.ci_high) == (0.0, 0.0)
    assert c.p_value == 1.0
    assert (c.wins, c.losses, c.ties) == (0, 0, 100)


def test_clear_improvement_and_reproducibility() -> None:
    rng = np.random.default_rng(0)
    a = (rng.random(2000) < 0.3).astype(float)
    b = np.maximum(a, (rng.random(2000) < 0.1).astype(float))  # B finds strictly more targets
    first = paired_comparison(a, b, metric="recall@10", n_resamples=2000, seed=7)
    again = paired_comparison(a, b, metric="recall@10", n_resamples=2000, seed=7)
    other = paired_comparison(a, b, metric="recall@10", n_resamples=2000, seed=8)
    assert first == again
    assert first.ci_low != other.ci_low or first.ci_high != other.ci_high
    assert first.difference == pytest.approx(b.mean() - a.mean())
    assert 0 < first.ci_low < first.difference < first.ci_high
    assert first.p_value == pytest.approx(1 / 2001)
    assert first.relative == pytest.approx(first.difference / a.mean())
    assert first.losses == 0


def test_interval_widens_with_confidence() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(500), rng.random(500)
    lo90, hi90 = bootstrap_interval(a, b, confidence=0.90, n_resamples=3000)
    lo99, hi99 = bootstrap_interval(a, b, confidence=0.99, n_resamples=3000)
    assert lo99 < lo90 < hi90 < hi99


@pytest.mark.parametrize(("a", "b", "message"), [
    ([1.0, 2.0], [1.0], "equal length"),
    ([], [], "no users"),
    ([1.0, float("nan")], [1.0, 1.0], "finite"),
])
def test_bad_values(a: list[float], b: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_comparison(a, b)


# ------------------------------------------------------------------------------------------------- files
def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_compare_pairs_users_by_id(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", [{"user_id": u, "target": 1, "ranked": [2, 1] if u % 2 else [1]}
                                      for u in range(10)])
    # B lists the same users in reverse order, with every target at rank 1
    b = _write(tmp_path / "b.jsonl", [{"user_id": u, "target": 1, "ranked": [1]}
                                      for u in reversed(range(10))])
    report = compare_predictions(a, b, metrics=["recall@1", "ndcg@10"], n_resamples=999)
    recall, ndcg = report.comparisons
    assert (report.a, report.b) == (str(a), str(b))
    assert recall.metric == "recall@1"
    assert (recall.mean_a, recall.mean_b, recall.difference) == (0.5, 1.0, 0.5)
    assert (recall.wins, recall.losses, recall.ties) == (5, 0, 5)
    assert ndcg.difference == pytest.approx(0.5 * (1 - 1 / np.log2(3)))


def test_compare_accepts_prediction_lists_and_hit_alias() -> None:
    a = [RankedPrediction(user_id=u, target=0, ranked=[1, 0], source="base") for u in range(5)]
    b = [RankedPrediction(user_id=u, target=0, ranked=[0], source="new") for u in range(5)]
    report = compare_predictions(a, b, metrics=["hit@1"], n_resamples=99)
    assert (report.a, report.b) == ("base", "new")
    assert report.comparisons[0].metric == "recall@1"


def test_compare_rejects_different_users_or_targets(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", [{"user_id": u, "target": 1, "ranked": [1]} for u in range(5)])
    b = _write(tmp_path / "b.jsonl", [{"user_id": u, "target": 1, "ranked": [1]} for u in range(1, 6)])
    with pytest.raises(InputError, match=r"different users \(1 only in A, 1 only in B"):
        compare_predictions(a, b)
    c = _write(tmp_path / "c.jsonl", [{"user_id": u, "target": 2 if u == 3 else 1, "ranked": [1]}
                                      for u in range(5)])
    with pytest.raises(InputError, match="user_id 3 has target 1 in A but 2 in B"):
        compare_predictions(a, c)
