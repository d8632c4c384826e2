"""Leave-one-out split: per user, the last item is the test target, the one before it the validation target.

For a sequence ``s = [s_0, ..., s_{n-1}]`` (n >= 3): train = ``s[:n-2]``; validation predicts ``s[n-2]`` from
``s[:n-2]``; test predicts ``s[n-1]`` from ``s[:n-1]``. The test item never enters training or validation
inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class UserSplit:
    """One user's leave-one-out split (dense item ids)."""

    user_id: int
    train: tuple[int, ...]
    valid_target: int
    test_target: int

    @property
    def valid_input(self) -> tuple[int, ...]:
        """History used to predict the validation target: the train items."""
        return self.train

    @property
    def test_input(self) -> tuple[int, ...]:
        """History used to predict the test target: train items + the validation item."""
        return (*self.train, self.valid_target)


def leave_one_out(user_id: int, items: Sequence[int]) -> UserSplit:
    """Split one time-ordered sequence; it needs at least 3 items.

    >>> leave_one_out(7, [4, 2, 9, 1])
    UserSplit(user_id=7, train=(4, 2), valid_target=9, test_target=1)
    """
    if len(items) < 3:
        raise ValueError(f"user {user_id}: a leave-one-out split needs >= 3 interactions, got {len(items)}")
    return UserSplit(user_id=user_id, train=tuple(items[:-2]), valid_target=items[-2], test_target=items[-1])


def canonical_split_text(rows: Sequence[tuple[str, Sequence[str], str, str]]) -> str:
    """Canonical text of a split in raw ids: one JSON array ``[user, [train items], valid, test]`` per line,
    sorted by user, compact separators, non-ASCII kept as UTF-8.

    JSON quoting makes the encoding unambiguous: ids may contain spaces, tabs or quotes
    (``("u", ["i1 i2"])`` and ``("u", ["i1", "i2"])`` differ). Raw ids make the hash independent of how dense
    ids were assigned.

    >>> canonical_split_text([("u1", ["a", "b c"], "d", "e")])
    '["u1",["a","b c"],"d","e"]\\n'
    """
    ordered = sorted((user, list(train), valid, test) for user, train, valid, test in rows)
    return "".join(json.dumps(list(row), ensure_ascii=False, separators=(",", ":")) + "\n" for row in ordered)


def split_sha256(rows: Sequence[tuple[str, Sequence[str], str, str]]) -> str:
    """sha256 hex digest of :func:`canonical_split_text` (UTF-8)."""
    return hashlib.sha256(canonical_split_text(rows).encode("utf-8")).hexdigest()
