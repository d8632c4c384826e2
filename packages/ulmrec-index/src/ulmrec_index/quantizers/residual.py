"""Helpers shared by residual quantizers whose codebooks live in one ``(L, K, D)`` tensor."""

from __future__ import annotations

import torch

from ulmrec_index.quantizers.kmeans import squared_distances


def residual_after(x: torch.Tensor, codebooks: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """``x − Σ_{l<p} C_l[prefix[:, l]]`` ``(N, D)`` for ``prefix`` ``(N, p)``, ``codebooks`` ``(L, K, D)``."""
    r = x.clone()
    for level in range(prefix.shape[1]):
        r -= codebooks[level][prefix[:, level]]
    return r


def decode_sum(codebooks: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``Σ_l C_l[codes[:, l]]`` ``(N, D)`` for ``codes`` ``(N, l)`` with ``l <= L`` (a prefix decodes too)."""
    out = torch.zeros(codes.shape[0], codebooks.shape[2], dtype=codebooks.dtype)
    for level in range(codes.shape[1]):
        out += codebooks[level][codes[:, level]]
    return out


def level_distances(x: torch.Tensor, codebooks: torch.Tensor, level: int,
                    prefix: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(N, K)`` of the residual after ``prefix`` to the level-``level`` codewords."""
    return squared_distances(residual_after(x, codebooks, prefix[:, :level]), codebooks[level])
