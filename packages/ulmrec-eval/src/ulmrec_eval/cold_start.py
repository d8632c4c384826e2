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

from ulmrec_eval.runtime.errors import InputError

__all__ = ["check_same_cold_start", "is_cold"]


def is_cold(user_id: str | int, share: float, *, seed: int = 0) -> bool:
    """Whether ``user_id`` (a raw id; an int means its decimal string) is among the ``share`` held out."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def check_same_cold_start(index: tuple[float, int], samples: tuple[float, int]) -> None:
    """Refuse alignment samples (or a ranking) whose cold-start ``(share, seed)`` is not the one the user
    index held out of its fit: with another choice, users the LLM treats as new were in the index's fit (or
    the reverse). Both without cold start passes.

    >>> check_same_cold_start((0.2, 0), (0.2, 0))
    >>> check_same_cold_start((0.0, 0), (0.3, 0))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ulmrec_eval.runtime.errors.InputError: the index holds out no users as cold-start (share 0, seed 0) ...
    """
    (index_share, index_seed), (share, seed) = index, samples
    if index_share <= 0 and share <= 0:
        return
    if (index_share, index_seed) == (share, seed):
        return
    held = "no users" if index_share <= 0 else f"{index_share:g} of the users"
    asked = "none" if share <= 0 else f"{share:g} of them"
    raise InputError(f"the index holds out {held} as cold-start (share {index_share:g}, seed {index_seed}) "
                     f"but {asked} (--cold-share {share:g} --cold-seed {seed}) are held out here: cold-start "
                     "users must be the same users for the index's fit and the LLM's training; give both the "
                     "same share and seed")
