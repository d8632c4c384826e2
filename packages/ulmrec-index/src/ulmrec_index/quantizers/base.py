"""The quantizer contract: every quantizer (built-in or third-party) satisfies :class:`Quantizer`.

Shapes: ``x`` is ``(N, D)`` float32; ``codes`` is ``(N, L)`` int64 with ``0 <= codes[:, l] < K_l``. Inputs
may be torch tensors or numpy arrays (:data:`TensorLike`); outputs are torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

#: What quantizers accept as vectors or codes: a torch tensor or a numpy array.
TensorLike: TypeAlias = torch.Tensor | np.ndarray


class QuantizerConfig(BaseModel):
    """Fields common to every quantizer config; each kind subclasses it and fixes ``kind`` to a Literal."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="Registry key (lowercase), e.g. 'rqvae', 'rqkmeans', 'faiss'.")
    levels: int = Field(default=4, ge=1, le=16, description="Number of code levels L.")
    codebook_size: int = Field(default=256, ge=2, le=65536, description="Codes per level K.")
    seed: int = Field(default=0, description="Seed of every random choice (init, k-means, dead-code reset).")


@dataclass
class FitReport:
    """What ``fit`` reports: the loss history (one value per epoch/iteration) and free-form scalars."""

    losses: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class QuantizerOutput:
    """A differentiable forward pass: reconstruction ``(N, D)``, codes ``(N, L)`` and the training loss."""

    reconstruction: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor


@runtime_checkable
class Quantizer(Protocol):
    """Maps vectors to L-level codes and back."""

    @property
    def config(self) -> QuantizerConfig:
        """The validated config (read-only here, so a subclass may narrow its type)."""
        ...

    def fit(self, x: TensorLike) -> FitReport:
        """Learn the codebooks (and any networks) from ``x`` ``(N, D)``."""
        ...

    def encode(self, x: TensorLike) -> torch.Tensor:
        """Codes ``(N, L)`` int64; deterministic once fitted, each row independent of its batch."""
        ...

    def decode(self, codes: TensorLike) -> torch.Tensor:
        """Reconstruction ``(N, D)`` from codes ``(N, L)`` (a prefix ``(N, l < L)`` decodes coarser)."""
        ...

    def code_distances(self, x: TensorLike, level: int, prefix: TensorLike) -> torch.Tensor:
        """Assignment costs ``(N, K)`` at ``level`` given the codes ``prefix`` ``(N, >= level)`` chosen.

        Non-negative, and ``encode`` picks their argmin on the last level: squared distances to the codewords,
        plus each code's non-negative surcharge where assignment is balanced by prices. Collision repair uses
        them to move a user to the next-best free code.
        """
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to rebuild the fitted quantizer from its config (saved as safetensors)."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_dict` output."""
        ...


@runtime_checkable
class TrainableQuantizer(Quantizer, Protocol):
    """A quantizer trained by gradient descent, so a fusion module in front of it can be trained jointly."""

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        """Differentiable pass (straight-through codes) with the quantizer's own loss."""
        ...

    def parameters(self) -> object:
        """Its torch parameters (an ``nn.Module`` provides this)."""
        ...
