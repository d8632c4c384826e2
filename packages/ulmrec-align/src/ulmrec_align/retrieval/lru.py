"""LRURec: linear recurrent units for sequential recommendation (arXiv 2310.02367; LlamaRec's retriever).

Shapes: ``B`` sequences, ``L`` positions, ``d`` = hidden size, ``H`` = complex state size, ``N`` = items.
Token ids are item ids shifted by one; ``0`` is padding (sequences are left-padded).

Per block (``x`` is ``(B, L, d)``, ``m`` the ``(B, L)`` mask of real positions)::

    b   = γ ⊙ (W_in x + c_in) ⊙ m                  complex (B, L, H); γ = exp(γ_log) normalises the input
    h_t = λ ⊙ h_{t-1} + b_t,  λ = exp(-ν + iθ)      parallel scan (scan.lru_scan)
    x   = LayerNorm(x + Dropout(Re(W_out h + c_out)))
    x   = LayerNorm(x + Dropout(W_2 Dropout(GELU(W_1 x))))

``scores = x · E[1:]ᵀ + bias`` over all ``N`` items. The complex projections are parametrised by real
matrices: ``W_in`` maps ``d → 2H`` (interleaved real and imaginary parts) and ``Re(W_out h)`` is one real
``2H → d`` map of the interleaved ``(Re h, Im h)`` (``Re((A + iB) h) = A Re h - B Im h`` is linear in them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ulmrec_align.retrieval.config import LRURecConfig
from ulmrec_align.retrieval.head import NextItemModel
from ulmrec_align.retrieval.scan import lru_scan

#: Parameter-name fragments excluded from weight decay (biases, LayerNorms and the recurrence ν, θ, γ).
NO_DECAY = ("bias", "norm", "nu_log", "theta_log", "gamma_log")


class LRULayer(nn.Module):
    """One linear recurrent unit with ring-initialised eigenvalues, residual connection and LayerNorm."""

    def __init__(self, *, d_model: int, state_size: int, dropout: float, r_min: float, r_max: float,
                 max_phase: float) -> None:
        super().__init__()
        self.state_size = state_size
        # ring initialisation: λ uniform (in area) on the ring r_min ≤ |λ| ≤ r_max, phase in [0, max_phase)
        u1 = torch.rand(state_size)
        u2 = torch.rand(state_size)
        nu = -0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2)    # |λ| = exp(-ν)
        theta = u2 * max_phase
        gamma = torch.sqrt(1.0 - torch.exp(-2.0 * nu))                # γ = sqrt(1 - |λ|²)
        self.nu_log = nn.Parameter(torch.log(nu))
        self.theta_log = nn.Parameter(torch.log(theta.clamp_min(1e-8)))
        self.gamma_log = nn.Parameter(torch.log(gamma))
        self.in_proj = nn.Linear(d_model, 2 * state_size)
        self.out_proj = nn.Linear(2 * state_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model)

    def eigenvalues(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ν, θ)`` of ``λ = exp(-ν + iθ)``, each ``(H,)``."""
        return torch.exp(self.nu_log), torch.exp(self.theta_log)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor | None = None,
                max_span: int | None = None) -> torch.Tensor:
        """``x`` (B, L, d), ``mask`` (B, L) bool, optional packed ``segments`` (B, L), their longest span."""
        nu, theta = self.eigenvalues()
        gamma = torch.exp(self.gamma_log)
        batch, length, _ = x.shape
        # (B, L, 2H) real → (B, L, H) complex: pairs (re, im) of the in-projection, zero at padding
        bu = torch.view_as_complex(self.in_proj(x).view(batch, length, self.state_size, 2))
        b = bu * (gamma * mask.unsqueeze(-1).to(x.dtype))
        h = lru_scan(b, nu, theta, segments, max_span=max_span)          # (B, L, H) complex
        y = self.out_proj(torch.view_as_real(h).reshape(batch, length, 2 * self.state_size))
        return self.layer_norm(x + self.dropout(y))                      # Re(W_out h + c_out) + residual


class FeedForward(nn.Module):
    """Position-wise ``LayerNorm(x + Dropout(W_2 Dropout(GELU(W_1 x))))``."""

    def __init__(self, *, d_model: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_inner)
        self.w_2 = nn.Linear(d_inner, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.dropout(F.gelu(self.w_1(x)))
        return self.layer_norm(x + self.dropout(self.w_2(inner)))


class LRUBlock(nn.Module):
    """LRU layer followed by the feed-forward layer."""

    def __init__(self, config: LRURecConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.lru = LRULayer(d_model=d, state_size=config.state_multiplier * d, dropout=config.lru_dropout,
                            r_min=config.r_min, r_max=config.r_max, max_phase=config.max_phase)
        self.ffn = FeedForward(d_model=d, d_inner=config.ffn_multiplier * d, dropout=config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor | None = None,
                max_span: int | None = None) -> torch.Tensor:
        return self.ffn(self.lru(x, mask, segments, max_span))


class LRURec(NextItemModel):
    """The LRURec sequence model: ``tokens (B, L)`` → hidden states ``(B, L, d)`` → item scores ``(·, N)``."""

    def __init__(self, *, n_items: int, config: LRURecConfig) -> None:
        super().__init__(n_items=n_items, hidden_size=config.hidden_size)
        self.config = config
        d = config.hidden_size
        self.embedding_layer_norm = nn.LayerNorm(d)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(LRUBlock(config) for _ in range(config.num_blocks))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated normal (±2 std) on weights and biases, not LayerNorm or the recurrence (as LlamaRec)."""
        std = self.config.init_std
        with torch.no_grad():
            for name, param in self.named_parameters():
                if "layer_norm" in name or name.endswith(("nu_log", "theta_log", "gamma_log")):
                    continue
                nn.init.trunc_normal_(param, mean=0.0, std=std, a=-2 * std, b=2 * std)

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens`` (B, L) int64 (item id + 1, 0 = padding) → hidden states (B, L, d).

        ``segments`` (B, L), non-decreasing, packs several sequences into one row (the recurrence restarts at
        each new id); without it each row is one (left-padded) sequence.
        """
        mask = tokens > 0
        max_span = None
        if segments is not None and segments.numel():
            # longest packed sequence: ids are non-decreasing, so run lengths are the counts per id
            max_span = int(torch.unique_consecutive(segments, return_counts=True)[1].max())
        x = self.embedding_layer_norm(self.embedding_dropout(self.item_embedding(tokens)))
        for block in self.blocks:
            x = block(x, mask, segments, max_span)
        return x


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """AdamW groups: decay on weights, none on biases, LayerNorm and the recurrence parameters."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        (no_decay if any(part in name for part in NO_DECAY) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(math.prod(p.shape) for p in model.parameters() if p.requires_grad)
