"""Iterative k-core filtering of (user, item) interactions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def k_core_mask(pairs: Sequence[tuple[str, str]], *, user_min: int, item_min: int,
                max_rounds: int | None = None) -> tuple[list[bool], int]:
    """Which interactions survive the k-core, and how many rounds removed something.

    One round drops interactions of items with fewer than ``item_min`` interactions, then those of users with
    fewer than ``user_min`` (LlamaRec's order); rounds repeat until nothing changes (or ``max_rounds``).
    Counts are over interactions, so a repeated (user, item) pair counts twice.

    >>> k_core_mask([("u", "a"), ("u", "b"), ("v", "a")], user_min=2, item_min=1)
    ([True, True, False], 1)
    """
    alive = [True] * len(pairs)
    rounds = run = 0
    while max_rounds is None or run < max_rounds:
        run += 1
        changed = False
        for side, minimum in ((1, item_min), (0, user_min)):
            counts = Counter(pair[side] for pair, keep in zip(pairs, alive, strict=True) if keep)
            for index, pair in enumerate(pairs):
                if alive[index] and counts[pair[side]] < minimum:
                    alive[index] = False
                    changed = True
        if not changed:
            break
        rounds += 1
    return alive, rounds
