"""SASRec (Kang & McAuley, 2018): a causal Transformer over item sequences, with LRURec's interface.

Same token convention as :mod:`ulmrec_align.retrieval.lru` (token = item id + 1, 0 = padding / empty context)
and the same packed batches: ``segments`` tell sequences in one row apart; attention is causal *within* a
segment, and positions count from each segment's start. ``scores = x · E[1:]ᵀ + bias``; the loss is the same
full cross-entropy over all items.
"""

from __future__ import annotations

import torch
from torch import nn

from ulmrec_align.retrieval.config import SASRecConfig
from ulmrec_align.retrieval.head import NextItemModel


class SASRec(NextItemModel):
    """``tokens (B, L)`` → hidden states ``(B, L, d)`` → item scores; pre-LayerNorm Transformer blocks."""

    def __init__(self, *, n_items: int, config: SASRecConfig) -> None:
        super().__init__(n_items=n_items, hidden_size=config.hidden_size)
        self.config = config
        d = config.hidden_size
        self.position_embedding = nn.Embedding(config.max_len + 1, d)
        self.embedding_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=config.num_heads, dim_feedforward=4 * d,
                                           dropout=config.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=config.num_blocks, enable_nested_tensor=False)
        self.final_layer_norm = nn.LayerNorm(d)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        std = config.init_std
        with torch.no_grad():
            for name, param in self.named_parameters():
                if param.dim() > 1 and "norm" not in name:
                    nn.init.trunc_normal_(param, mean=0.0, std=std, a=-2 * std, b=2 * std)

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens`` (B, L); ``segments`` (B, L) non-decreasing ids of packed sequences (None: one a row)."""
        batch, length = tokens.shape
        if segments is None:
            # one sequence per row; leading padding belongs to it but is never attended to
            segments = torch.zeros_like(tokens)
            starts = (tokens > 0).float().argmax(dim=1).clamp_min(1) - 1              # the empty-context slot
            index = torch.arange(length, device=tokens.device).expand(batch, length)
            positions = (index - starts.unsqueeze(1)).clamp_min(0)
            valid = index >= starts.unsqueeze(1)
        else:
            index = torch.arange(length, device=tokens.device).expand(batch, length)
            new = torch.ones_like(segments, dtype=torch.bool)
            new[:, 1:] = segments[:, 1:] != segments[:, :-1]
            start_index = torch.where(new, index, torch.zeros_like(index)).cummax(dim=1).values
            positions = index - start_index
            valid = torch.ones_like(tokens, dtype=torch.bool)
        positions = positions.clamp_max(self.config.max_len)
        x = self.embedding_dropout(self.item_embedding(tokens) + self.position_embedding(positions))
        same = segments.unsqueeze(2) == segments.unsqueeze(1)                         # (B, L, L)
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        allowed = same & causal & valid.unsqueeze(1)
        allowed |= torch.eye(length, dtype=torch.bool, device=tokens.device)          # never an empty row
        mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, float("-inf"))
        mask = mask.repeat_interleave(self.config.num_heads, dim=0)                    # (B·heads, L, L)
        return self.final_layer_norm(self.encoder(x, mask=mask))
