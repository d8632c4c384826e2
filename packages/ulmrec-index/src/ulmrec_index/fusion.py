"""Fusion of a user's text embeddings with a user-ID embedding into the one vector that gets quantized.

Notation: ``t_{u,1..n}`` the user's L2-normalised text embeddings ``(n, D)``, ``e_u`` the user-ID embedding
``(d_id,)``, ``w`` = ``id_weight``. Three modes (``--fusion``):

* ``none`` (ablation, text only): ``x_u = mean_i t_{u,i}``. Users without text get ``null`` (the corpus mean).
* ``mean``: ``x_u = mean_i t_{u,i} + w * normalize(W_o e_u)`` with ``e_u`` and ``W_o`` fixed random (seeded),
  not trained: a deterministic per-user offset of norm ``w`` that separates users with identical text.
* ``attention`` (the paper's): the ID embedding is the query of an attention pool over the text embeddings::

      q_u = W_q e_u + W_m mean_i t_{u,i}           (d_a,)
      a_{u,i} = softmax_i(q_u . W_k t_{u,i} / sqrt(d_a))
      x_u = sum_i a_{u,i} t_{u,i} + w * normalize(W_o e_u)

  Every weight (``e``, ``W_q``, ``W_m``, ``W_k``, ``W_o``, ``null``) is trained jointly with a trainable
  quantizer (see :mod:`ulmrec_index.indexer`). The pool stays a convex combination of the user's own text
  embeddings, so the coarse code levels keep the text semantics; the ID term has a fixed norm ``w`` (it can
  turn but not grow or vanish) and a uniformity loss keeps the ID directions of different users
  apart, so the quantizer cannot make them collapse.

Users with no text take ``null`` as their pooled text (a learned vector initialised to the corpus mean) and
are told apart by the ID term alone: the "ID path".
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

FusionMode = Literal["none", "mean", "attention"]


class TextBank:
    """Every user's text embeddings, flat ``(M, D)`` with ``offsets`` ``(N + 1,)``: user ``u`` owns rows
    ``offsets[u]:offsets[u+1]`` (possibly none)."""

    def __init__(self, embeddings: torch.Tensor, offsets: torch.Tensor) -> None:
        self.embeddings = embeddings.to(torch.float32)
        self.offsets = offsets.to(torch.int64)
        self.counts = self.offsets[1:] - self.offsets[:-1]

    @property
    def num_users(self) -> int:
        return int(self.counts.numel())

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def means(self) -> torch.Tensor:
        """Per-user mean text embedding ``(N, D)`` (zeros where a user has no text)."""
        owner = torch.repeat_interleave(torch.arange(self.num_users), self.counts)
        sums = torch.zeros(self.num_users, self.dim).index_add_(0, owner, self.embeddings)
        return sums / self.counts.clamp(min=1).unsqueeze(1).to(sums.dtype)

    def padded(self, users: torch.Tensor, max_texts: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n, D)`` text embeddings of ``users`` (their last ``max_texts`` texts) and a ``(B, n)``
        mask."""
        counts = self.counts[users].clamp(max=max_texts)
        width = max(int(counts.max()) if counts.numel() else 0, 1)
        slot = torch.arange(width).unsqueeze(0)  # (1, n)
        mask = slot < counts.unsqueeze(1)  # (B, n)
        start = self.offsets[users + 1] - counts  # last `counts` rows of each user
        rows = (start.unsqueeze(1) + slot).clamp(max=max(self.embeddings.shape[0] - 1, 0))
        if self.embeddings.shape[0] == 0:
            return torch.zeros(len(users), width, self.dim), mask
        texts = self.embeddings[rows] * mask.unsqueeze(-1)
        return texts, mask


class UserFusion(nn.Module):
    """Maps (user index, text embeddings) to the fused vector ``(B, D)``; see the module docstring."""

    def __init__(
        self,
        *,
        mode: FusionMode,
        num_users: int,
        text_dim: int,
        id_dim: int = 64,
        attn_dim: int = 64,
        id_weight: float = 0.25,
        max_texts: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in ("none", "mean", "attention"):
            raise ValueError(f"unknown fusion mode {mode!r} (none, mean, attention)")
        self.mode = mode
        self.num_users = num_users
        self.text_dim = text_dim
        self.id_weight = float(id_weight)
        self.max_texts = max_texts
        gen = torch.Generator().manual_seed(seed)
        self.null = nn.Parameter(torch.zeros(text_dim), requires_grad=mode == "attention")
        if mode == "none":
            return
        trainable = mode == "attention"
        self.id_embedding = nn.Parameter(
            torch.randn(num_users, id_dim, generator=gen), requires_grad=trainable
        )
        self.w_o = nn.Parameter(
            torch.randn(id_dim, text_dim, generator=gen) / math.sqrt(id_dim), requires_grad=trainable
        )
        if mode == "attention":
            self.attn_dim = attn_dim
            self.w_q = nn.Parameter(torch.randn(id_dim, attn_dim, generator=gen) / math.sqrt(id_dim))
            self.w_m = nn.Parameter(torch.randn(text_dim, attn_dim, generator=gen) / math.sqrt(text_dim))
            self.w_k = nn.Parameter(torch.randn(text_dim, attn_dim, generator=gen) / math.sqrt(text_dim))

    @property
    def trainable(self) -> bool:
        return self.mode == "attention"

    def init_null(self, bank: TextBank) -> None:
        """Set ``null`` to the corpus mean text embedding (users with no text start there)."""
        with torch.no_grad():
            has = bank.counts > 0
            self.null.copy_(bank.means()[has].mean(0) if bool(has.any()) else torch.zeros(self.text_dim))

    def id_directions(self, users: torch.Tensor) -> torch.Tensor:
        """Unit ID directions ``normalize(W_o e_u)`` ``(B, D)``."""
        return F.normalize(self.id_embedding[users] @ self.w_o, dim=-1)

    def pooled(self, users: torch.Tensor, bank: TextBank) -> torch.Tensor:
        """The text part ``(B, D)``: the plain mean, or the ID-queried attention pool (``null`` without
        text)."""
        texts, mask = bank.padded(users, self.max_texts)  # (B, n, D), (B, n)
        has_text = mask.any(dim=1)  # (B,)
        counts = mask.sum(dim=1, keepdim=True).clamp(min=1).to(texts.dtype)
        mean = texts.sum(dim=1) / counts  # (B, D)
        if self.mode == "attention":
            query = self.id_embedding[users] @ self.w_q + mean @ self.w_m  # (B, d_a)
            keys = texts @ self.w_k  # (B, n, d_a)
            scores = torch.einsum("bd,bnd->bn", query, keys) / math.sqrt(self.attn_dim)
            scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # rows without text: all -inf -> 0
            mean = torch.einsum("bn,bnd->bd", weights, texts)
        return torch.where(has_text.unsqueeze(1), mean, self.null.unsqueeze(0).expand_as(mean))

    def forward(self, users: torch.Tensor, bank: TextBank) -> torch.Tensor:
        """Fused vectors ``(B, D)`` for user indices ``users`` ``(B,)`` (rows of ``bank``)."""
        x = self.pooled(users, bank)
        if self.mode == "none":
            return x
        return x + self.id_weight * self.id_directions(users)

    def fuse_all(self, bank: TextBank, batch_size: int = 4096) -> torch.Tensor:
        """Fused vectors of every user ``(N, D)``, without gradients."""
        with torch.no_grad():
            parts = [
                self(torch.arange(i, min(i + batch_size, bank.num_users)), bank)
                for i in range(0, bank.num_users, batch_size)
            ]
        return torch.cat(parts) if parts else torch.zeros(0, self.text_dim)

    def pooled_text_only(self, bank: TextBank) -> torch.Tensor:
        """Plain mean text (``null`` where empty): what a user with no learned ID gets."""
        means = bank.means()
        has = (bank.counts > 0).unsqueeze(1)
        return torch.where(has, means, self.null.detach().unsqueeze(0).expand_as(means))


def uniformity_loss(directions: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """``log mean_{i<j} exp(-t ||z_i - z_j||^2)`` over unit vectors ``(B, D)`` (Wang & Isola, 2020): lowest
    when the directions spread over the sphere, so different users keep different ID terms."""
    if directions.shape[0] < 2:
        return directions.sum() * 0.0
    sq = torch.pdist(directions).pow(2)
    return torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel())
