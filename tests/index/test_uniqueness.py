"""Collision repair: hand cases, next-best choice, extra levels, and uniqueness for any input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ulmrec_index.quantizers import QuantizerError
from ulmrec_index.uniqueness import collided_mask, collision_count, make_unique


def test_collision_count_and_mask() -> None:
    codes = torch.tensor([[0, 1], [0, 1], [0, 1], [2, 3], [0, 2]])
    assert collision_count(codes) == 2
    assert collided_mask(codes).tolist() == [True, True, True, False, False]
    assert collision_count(torch.zeros(0, 3, dtype=torch.int64)) == 0


def test_unique_input_is_unchanged() -> None:
    codes = torch.tensor([[0, 1], [1, 1], [0, 0]])
    result = make_unique(codes, distances_last_level=None, codebook_size=4)
    assert torch.equal(result.codes, codes)
    assert (result.n_collided_before, result.n_reassigned, result.n_extra_level) == (0, 0, 0)
    assert not result.extra_level_used


def test_closest_user_keeps_the_code_and_the_other_takes_its_next_best_free_code() -> None:
    codes = torch.tensor([[5, 2], [5, 2], [5, 1]])  # users 0 and 1 collide; code 1 is taken by user 2
    dist = torch.tensor([
        [0.0, 0.0, 0.9, 0.0],  # user 0 is farther from code 2 than user 1
        [0.0, 0.2, 0.1, 0.3],  # user 1 stays on code 2
        [0.0, 0.0, 0.0, 0.0],
    ])
    dist[0] = torch.tensor([0.5, 0.1, 0.9, 0.4])  # best free code for user 0: 1 is taken, then 3 (0.4)
    result = make_unique(codes, distances_last_level=dist, codebook_size=4)
    assert result.codes.tolist() == [[5, 3], [5, 2], [5, 1]]
    assert (result.n_collided_before, result.n_reassigned, result.n_extra_level) == (1, 1, 0)


def test_distance_callable_is_asked_only_about_collided_users() -> None:
    codes = torch.tensor([[0, 0], [0, 0], [1, 0], [2, 3]])
    asked: list[list[int]] = []

    def distances(rows: torch.Tensor) -> torch.Tensor:
        asked.append(rows.tolist())
        return torch.arange(4.0).repeat(len(rows), 1)

    result = make_unique(codes, distances_last_level=distances, codebook_size=4)
    assert asked == [[0, 1]]
    assert collision_count(result.codes) == 0


def test_group_larger_than_k_gets_an_extra_level() -> None:
    codes = torch.zeros(10, 2, dtype=torch.int64)
    result = make_unique(codes, distances_last_level=None, codebook_size=4)
    assert result.codes.shape == (10, 3)
    assert collision_count(result.codes) == 0
    assert result.extra_level_used
    assert result.extra_levels == 1
    assert torch.bincount(result.codes[:, 1], minlength=4).tolist() == [3, 3, 3, 1]  # spread first
    assert int(result.codes[:, 2].max()) < 4


def test_more_than_k_squared_copies_use_several_extra_levels() -> None:
    codes = torch.zeros(40, 1, dtype=torch.int64)
    result = make_unique(codes, distances_last_level=None, codebook_size=2)
    assert collision_count(result.codes) == 0
    assert int(result.codes.max()) < 2
    assert result.extra_levels == 5  # 20 copies per last-level code: ranks 0..19 need 5 base-2 digits


def test_empty_input_is_returned_as_is() -> None:
    result = make_unique(torch.zeros(0, 3, dtype=torch.int64), distances_last_level=None, codebook_size=4)
    assert result.codes.shape == (0, 3)


@pytest.mark.parametrize(
    ("codes", "dist", "k", "match"),
    [
        (torch.zeros(3, 2), None, 4, "integers"),
        (torch.zeros(3, dtype=torch.int64), None, 4, r"\(N, L\)"),
        (torch.full((2, 2), 7), None, 4, r"\[0, 4\)"),
        (torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 3), 4, "distances"),
        (torch.zeros(2, 2, dtype=torch.int64), torch.full((2, 4), float("nan")), 4, "NaN"),
    ],
)
def test_bad_input(codes: torch.Tensor, dist: torch.Tensor | None, k: int, match: str) -> None:
    with pytest.raises(QuantizerError, match=match):
        make_unique(codes, distances_last_level=dist, codebook_size=k)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 300), levels=st.integers(1, 3), k=st.integers(1, 6), seed=st.integers(0, 2**16),
       with_distances=st.booleans())
def test_any_codes_become_unique(n: int, levels: int, k: int, seed: int, with_distances: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(k, (n, levels), generator=gen)
    codes[n // 2 :] = codes[0].clone()  # half the users are exact duplicates of the first
    dist = torch.rand(n, k, generator=gen) if with_distances else None
    result = make_unique(codes, distances_last_level=dist, codebook_size=k)
    assert collision_count(result.codes) == 0
    assert int(result.codes[:, :levels].max()) < k
    assert int(result.codes.max()) < max(k, 2)
    assert torch.equal(result.codes[:, : levels - 1], codes[:, : levels - 1])
    untouched = ~collided_mask(codes)
    assert torch.equal(result.codes[untouched, :levels], codes[untouched])
    assert result.n_collided_before == collision_count(codes)
