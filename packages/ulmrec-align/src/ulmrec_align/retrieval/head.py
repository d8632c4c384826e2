"""The item-scoring head LRURec and SASRec share (token = item id + 1, 0 = padding / empty context).

``scores = x · E[1:]ᵀ + bias`` over all ``N`` items, and the loss is the full cross-entropy over them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NextItemModel(nn.Module):
    """Base of the sequence models: a subclass sets ``item_embedding`` ((N + 1, d), row 0 = padding) and
    ``item_bias`` (N,) and implements ``forward(tokens, segments=None)`` → hidden states (B, L, d)."""

    item_embedding: nn.Embedding
    item_bias: nn.Parameter

    def __init__(self, *, n_items: int, hidden_size: int) -> None:
        """Check ``n_items`` and create ``item_embedding`` ``(n_items + 1, hidden_size)`` (row 0: padding)."""
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items + 1, hidden_size)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` (..., d) → scores (..., N) = hidden · E[1:]ᵀ + bias (0-based item ids)."""
        return hidden @ self.item_embedding.weight[1:].T + self.item_bias

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor, segments: torch.Tensor | None = None, *,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """Mean cross-entropy over all items at every labelled position.

        ``tokens`` (B, L); ``labels`` (B, L) 0-based item ids, ``-1`` where nothing is predicted; ``segments``
        as in ``forward``. Only labelled positions are scored: the ``(M, N)`` logits cover ``M`` targets.
        """
        hidden = self(tokens, segments)
        keep = labels >= 0
        logits = self.item_scores(hidden[keep])                          # (M, N)
        return F.cross_entropy(logits, labels[keep], label_smoothing=label_smoothing)

    def last_scores(self, tokens: torch.Tensor) -> torch.Tensor:
        """Scores of the next item after each (left-padded) sequence: (B, L) → (B, N)."""
        return self.item_scores(self(tokens)[:, -1])

    def packed_scores(self, tokens: torch.Tensor, segments: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Next-item scores of packed sequences: ``tokens``/``segments`` (1, T), ``last`` (U,) → (U, N)."""
        return self.item_scores(self(tokens, segments)[0, last])
