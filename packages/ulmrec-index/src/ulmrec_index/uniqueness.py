"""Collision repair: make every row of an ``(N, L)`` code matrix distinct.

1. Users are grouped by their prefix ``codes[:, :L-1]``. In a group of ``n`` users each last-level code may
   hold ``c = ceil(n / K)`` users (``c = 1`` whenever ``n <= K``). Holders beyond ``c`` — the ones farthest
   from the codeword — are displaced and re-assigned to the nearest code with room left in their group, in
   proposal rounds (each displaced user proposes its nearest free code, which accepts its closest proposers).
2. Only when a prefix group is larger than K do full codes still collide; then extra level(s) are appended:
   users sharing an L-level code are numbered ``0, 1, …`` in original order (base K — base 2 when K = 1 —
   with as many levels as needed, in practice one); everyone else gets 0 there.

So any input — duplicates, near-duplicates, more users than codes — comes out unique, and the last level is
only changed for users who collided.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ulmrec_index.quantizers.errors import QuantizerError

__all__ = ["UniqueResult", "collided_mask", "collision_count", "make_unique", "make_unique_for_quantizer"]

DistanceFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class UniqueResult:
    """Repaired codes and what it took.

    - ``codes`` ``(N, L + e)``: distinct rows (``e`` extra levels, 0 unless a prefix group exceeded K).
    - ``n_collided_before``: :func:`collision_count` of the input (users beyond the first per shared code).
    - ``n_reassigned``: users whose last-level code changed.
    - ``n_extra_level``: users whose L-level code still collided after re-assignment (told apart by the extra
      level).
    - ``extra_level_used``: whether extra level(s) were appended; ``extra_levels`` how many.
    """

    codes: torch.Tensor
    n_collided_before: int
    n_reassigned: int
    n_extra_level: int
    extra_level_used: bool
    extra_levels: int = 0


def _check_codes(codes: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(codes, np.ndarray) and codes.dtype.kind in "iu":
        codes = torch.from_numpy(codes)
    if not isinstance(codes, torch.Tensor) or codes.ndim != 2:
        raise QuantizerError(f"codes must be an (N, L) tensor, got {getattr(codes, 'shape', type(codes))}")
    if codes.is_floating_point() or codes.dtype == torch.bool:
        raise QuantizerError(f"codes must be integers, got {codes.dtype}")
    if codes.shape[1] == 0:
        raise QuantizerError("codes must have at least one level")
    return codes.to(torch.int64)


def collision_count(codes: torch.Tensor | np.ndarray) -> int:
    """``N − (number of distinct rows)``: how many users would have to move for all codes to be distinct."""
    codes = _check_codes(codes)
    if codes.shape[0] == 0:
        return 0
    return int(codes.shape[0] - torch.unique(codes, dim=0).shape[0])


def collided_mask(codes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``(N,)`` bool: whether the user's code is shared with at least one other user."""
    codes = _check_codes(codes)
    if codes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    _, inverse, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    return counts[inverse] > 1


def _group_ids(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense group id per row ``(N,)`` and sizes ``(G,)`` of identical rows (one group if no columns)."""
    if codes.shape[1] == 0:
        return torch.zeros(codes.shape[0], dtype=torch.int64), torch.tensor([codes.shape[0]])
    _, inverse, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    return inverse, counts


def _rank_within(keys: torch.Tensor, order_value: torch.Tensor) -> torch.Tensor:
    """Rank ``(M,)`` of each row within its ``keys`` group, by ascending ``order_value`` (ties: row order)."""
    m = keys.shape[0]
    if m == 0:
        return torch.zeros(0, dtype=torch.int64)
    by_value = torch.argsort(order_value, stable=True)
    perm = by_value[torch.argsort(keys[by_value], stable=True)]  # sorted by key, then value, then index
    sorted_keys = keys[perm]
    start = torch.ones(m, dtype=torch.bool)
    start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    pos = torch.arange(m)
    group_start = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), dim=0).values
    rank = torch.empty(m, dtype=torch.int64)
    rank[perm] = pos - group_start
    return rank


def _distances_for(rows: torch.Tensor, distances: torch.Tensor | DistanceFn | None, k: int) -> torch.Tensor:
    if distances is None:
        return torch.zeros(rows.shape[0], k)
    d = distances[rows] if isinstance(distances, torch.Tensor) else distances(rows)
    if not isinstance(d, torch.Tensor) or tuple(d.shape) != (rows.shape[0], k):
        raise QuantizerError(f"last-level distances must have shape ({rows.shape[0]}, {k}), "
                             f"got {getattr(d, 'shape', type(d))}")
    d = d.detach().to(torch.float32)
    if bool(torch.isnan(d).any()):
        raise QuantizerError("last-level distances contain NaN")
    return d


def make_unique(
    codes: torch.Tensor | np.ndarray,
    *,
    distances_last_level: torch.Tensor | DistanceFn | None,
    codebook_size: int,
) -> UniqueResult:
    """Distinct codes ``(N, L[+e])`` from ``codes`` ``(N, L)``; see the module docstring for the procedure.

    ``distances_last_level``: ``(N, K)`` squared distances of each user's last-level residual to the K
    codewords, or a function ``rows (M,) -> (M, K)`` evaluated only for users in collided groups (cheap on
    big inputs), or ``None`` (next free code by index). An empty input is returned unchanged.
    """
    codes = _check_codes(codes)
    k = int(codebook_size)
    if k < 1:
        raise QuantizerError(f"codebook_size must be >= 1, got {codebook_size}")
    n, levels = codes.shape
    if n and (int(codes[:, -1].min()) < 0 or int(codes[:, -1].max()) >= k):
        raise QuantizerError(f"last-level codes must lie in [0, {k}), got [{int(codes[:, -1].min())}, "
                             f"{int(codes[:, -1].max())}]")
    if isinstance(distances_last_level, torch.Tensor) and tuple(distances_last_level.shape) != (n, k):
        raise QuantizerError(f"distances_last_level must have shape ({n}, {k}), "
                             f"got {tuple(distances_last_level.shape)}")
    before = collision_count(codes) if n else 0
    out = codes.clone()
    if before == 0:
        return UniqueResult(out, 0, 0, 0, False, 0)

    group, group_size = _group_ids(codes[:, : levels - 1])  # (N,), (G,)
    capacity = (group_size + k - 1) // k  # (G,) users allowed per last-level code in that group
    last = codes[:, -1]
    slot = group * k + last  # (N,) one id per (group, last code)
    rows = torch.nonzero(collided_mask(codes)).flatten()  # only users in collided full codes are candidates
    dist = _distances_for(rows, distances_last_level, k)  # (M, K)
    own = dist.gather(1, last[rows, None]).squeeze(1)
    # Among holders of one (group, code) slot, the closest `capacity` stay; the rest are displaced.
    stay_rank = _rank_within(slot[rows], own)
    displaced = stay_rank >= capacity[group[rows]]
    load = torch.bincount(slot, minlength=int(group_size.shape[0]) * k)
    load.index_add_(0, slot[rows[displaced]], -torch.ones(int(displaced.sum()), dtype=torch.int64))
    room = capacity.repeat_interleave(k) - load  # (G*K,) free places per slot

    todo = rows[displaced]
    todo_dist = dist[displaced]
    new_last = last.clone()
    while todo.numel():
        g = group[todo]
        slots = g[:, None] * k + torch.arange(k)[None, :]  # (M, K)
        masked = torch.where(room[slots] > 0, todo_dist, torch.full_like(todo_dist, math.inf))
        choice = masked.argmin(dim=1)  # ties: lowest code index
        chosen_slot = g * k + choice
        chosen_dist = masked.gather(1, choice[:, None]).squeeze(1)
        accept = _rank_within(chosen_slot, chosen_dist) < room[chosen_slot]
        acc_rows = todo[accept]
        new_last[acc_rows] = choice[accept]
        room.index_add_(0, chosen_slot[accept], -torch.ones(int(accept.sum()), dtype=torch.int64))
        todo, todo_dist = todo[~accept], todo_dist[~accept]
    out[:, -1] = new_last
    n_reassigned = int((new_last != last).sum())

    still = collided_mask(out)
    n_extra = int(still.sum())
    if n_extra == 0:
        return UniqueResult(out, before, n_reassigned, 0, False, 0)
    full_group, _ = _group_ids(out)
    rank = _rank_within(full_group, torch.zeros(n))  # 0..m-1 in original row order
    max_rank = int(rank.max())
    base = max(k, 2)  # K = 1 cannot count: extra levels then use 0/1
    n_digits = 1
    while base**n_digits <= max_rank:
        n_digits += 1
    digits = torch.empty(n, n_digits, dtype=torch.int64)
    rest = rank.clone()
    for i in range(n_digits - 1, -1, -1):
        digits[:, i] = rest % base
        rest //= base
    return UniqueResult(torch.cat([out, digits], dim=1), before, n_reassigned, n_extra, True, n_digits)


def make_unique_for_quantizer(quantizer: object, x: torch.Tensor | np.ndarray,
                              codes: torch.Tensor | np.ndarray | None = None) -> UniqueResult:
    """Encode ``x`` with a fitted quantizer (unless ``codes`` is given); repair with its last-level distances.

    Distances come from ``quantizer.code_distances(x[rows], L-1, codes[rows, :L-1])`` for collided rows only.
    """
    from ulmrec_index.quantizers._checks import as_tensor
    from ulmrec_index.quantizers.base import Quantizer

    if not isinstance(quantizer, Quantizer):
        raise QuantizerError(f"{type(quantizer).__name__} does not implement the Quantizer protocol")
    x = as_tensor(x, "x", "(N, D)")
    if codes is None:
        codes = quantizer.encode(x)
    codes = _check_codes(codes)
    last = codes.shape[1] - 1

    def distances(rows: torch.Tensor) -> torch.Tensor:
        return quantizer.code_distances(x[rows], last, codes[rows, :last])

    return make_unique(codes, distances_last_level=distances, codebook_size=quantizer.config.codebook_size)
