"""Iterative k-core: hand cases and properties (a k-core, the largest one, order-free)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ulmrec_align.data.kcore import k_core_mask

pairs_strategy = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from("pqrstuvw")), max_size=80)


def _survivors(pairs, alive):
    return Counter(p for p, keep in zip(pairs, alive, strict=True) if keep)


@pytest.mark.parametrize(
    ("pairs", "user_min", "item_min", "expected_alive", "rounds"),
    [
        ([], 2, 2, [], 0),
        ([("u", "a"), ("u", "b"), ("v", "a"), ("v", "b")], 2, 2, [True] * 4, 0),
        ([("u", "a"), ("u", "b"), ("v", "a")], 2, 2, [False] * 3, 1),  # b drops, then u and v
        ([("u", "a"), ("u", "b"), ("v", "a")], 1, 2, [True, False, True], 1),
    ],
)
def test_hand_cases(pairs, user_min, item_min, expected_alive, rounds):
    assert k_core_mask(pairs, user_min=user_min, item_min=item_min) == (expected_alive, rounds)


def _brute_force_core(pairs, user_min, item_min):
    """The largest sub-multiset in which every user has >= user_min and every item >= item_min interactions:
    drop any violating node until none is left (the k-core is unique, whatever the order)."""
    alive = list(range(len(pairs)))
    while True:
        users = Counter(pairs[i][0] for i in alive)
        items = Counter(pairs[i][1] for i in alive)
        bad = [i for i in alive if users[pairs[i][0]] < user_min or items[pairs[i][1]] < item_min]
        if not bad:
            return sorted(alive)
        first = bad[-1]  # remove a single offender's node at a time, in a different order than the algorithm
        node_is_user = users[pairs[first][0]] < user_min
        alive = [
            i
            for i in alive
            if (pairs[i][0] if node_is_user else pairs[i][1])
            != (pairs[first][0] if node_is_user else pairs[first][1])
        ]


@settings(max_examples=150, deadline=None)
@given(pairs=pairs_strategy, user_min=st.integers(1, 5), item_min=st.integers(1, 5))
def test_matches_the_unique_k_core(pairs, user_min, item_min):
    alive, _ = k_core_mask(pairs, user_min=user_min, item_min=item_min)
    kept = [i for i, keep in enumerate(alive) if keep]
    assert kept == _brute_force_core(pairs, user_min, item_min)
    users = Counter(pairs[i][0] for i in kept)
    items = Counter(pairs[i][1] for i in kept)
    assert all(c >= user_min for c in users.values())
    assert all(c >= item_min for c in items.values())


@settings(max_examples=60, deadline=None)
@given(pairs=pairs_strategy, data=st.data())
def test_independent_of_row_order(pairs, data):
    order = data.draw(st.permutations(range(len(pairs))))
    shuffled = [pairs[i] for i in order]
    alive, _ = k_core_mask(pairs, user_min=3, item_min=2)
    alive_shuffled, _ = k_core_mask(shuffled, user_min=3, item_min=2)
    assert _survivors(pairs, alive) == _survivors(shuffled, alive_shuffled)
