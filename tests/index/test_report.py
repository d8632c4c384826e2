"""Report figures against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ulmrec_index.report import code_stats, coherence, count_collisions, level_stats, reference_stats


def test_level_stats_usage_and_perplexity() -> None:
    codes = np.array([[0, 1], [0, 2], [1, 3], [1, 3]])
    stats = level_stats(codes, [4, 4])
    assert [s.used for s in stats] == [2, 3]
    assert stats[0].perplexity == pytest.approx(2.0)
    p = np.array([0.25, 0.25, 0.5])
    assert stats[1].perplexity == pytest.approx(math.exp(-(p * np.log(p)).sum()))


def test_collisions_count_users_to_move() -> None:
    assert count_collisions(np.array([[0, 1], [0, 1], [0, 1], [2, 2]])) == 2
    assert count_collisions(np.zeros((0, 2), dtype=np.int64)) == 0


def test_coherence_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(30, 5)) + 1.0
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    codes = rng.integers(0, 3, size=(30, 2))
    cos = text @ text.T
    for prefix in (1, 2):
        same = [
            (i, j)
            for i in range(30)
            for j in range(30)
            if i != j and (codes[i, :prefix] == codes[j, :prefix]).all()
        ]
        within = np.mean([cos[i, j] for i, j in same])
        random = np.mean([cos[i, j] for i in range(30) for j in range(30) if i != j])
        got = coherence(text, codes, prefix)
        assert got.within == pytest.approx(within)
        assert got.random == pytest.approx(random)
        assert got.ratio == pytest.approx(within / random)
        assert got.n_pairs == len(same) // 2


def test_coherence_of_a_perfect_split() -> None:
    a, b = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    text = np.stack([a, a, b, b])
    got = coherence(text, np.array([[0], [0], [1], [1]]), 1)
    assert got.within == pytest.approx(1.0)
    assert got.random == pytest.approx((2 * 1.0 + 4 * 0.6) / 6)


def test_code_stats_skips_users_without_text_and_reference_matches_ids() -> None:
    text = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    stats = code_stats(np.array([[0, 0], [0, 1], [0, 2], [1, 0]]), [2, 3], text)
    assert stats.coherence[0].n_pairs == 1  # the text-less user is left out
    ref = {"levels": ["a", "b"], "codebook_size": 4, "codes": {"u0": [1, 1], "u3": [1, 1], "zz": [0, 0]}}
    ref_stats, matched = reference_stats(ref, ["u0", "u1", "u2", "u3"], text)
    assert matched == 2
    assert ref_stats.collisions == 1
    assert ref_stats.levels[0].codebook_size == 4
