"""Cold-start users: a seeded share of users held out of training, chosen the same way by every stage.

A user is cold when ``u = int(sha256(f"{seed}:{user_id}")[:8]) / 2**64 < share``: a pure function of the
user's raw id, so the index (``index build --cold-share``), the alignment samples (``align build
--cold-share``) and the ranker's rows agree on the set without passing it around, and adding users never
changes who else is cold.

>>> sorted(u for u in map(str, range(20)) if is_cold(u, 0.25, seed=0))
['15', '18', '7']
>>> is_cold("A1", 0.0, seed=3), is_cold("A1", 1.0, seed=3)
(False, True)
"""

from __future__ import annotations

import hashlib

__all__ = ["is_cold"]


def is_cold(user_id: str | int, share: float, *, seed: int = 0) -> bool:
    """Whether ``user_id`` (a raw id; an int means its decimal string) is among the ``share`` held out."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
