"""The indexer's settings (:class:`IndexerConfig`) and the error it raises (:class:`IndexerError`).

Both are re-exported by :mod:`ulmrec_index.indexer` and the package root.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_index.fusion import FusionMode
from ulmrec_index.quantizers.base import QuantizerConfig
from ulmrec_index.quantizers.registry import parse_quantizer_config


class IndexerError(UlmrecError, RuntimeError):
    """The index cannot be built or used as asked (e.g. no free code left for a new user)."""


def _default_quantizer() -> QuantizerConfig:
    return parse_quantizer_config({"kind": "rqvae"})


class IndexerConfig(BaseModel):
    """Everything that decides a user index (the cache folder and progress bars aside)."""

    model_config = ConfigDict(extra="forbid")

    quantizer: SerializeAsAny[QuantizerConfig] = Field(
        default_factory=_default_quantizer,
        description="Quantizer config (dict with 'kind' or a config instance).",
    )
    encoder: str | None = Field(
        default=None, description="sentence-transformers name or folder; None: MiniLM."
    )
    fusion: FusionMode = Field(
        default="attention", description="none | mean | attention (see ulmrec_index.fusion)."
    )
    id_weight: float = Field(default=0.25, ge=0.0, description="Norm of the ID term added to the text part.")
    id_dim: int = Field(default=64, ge=1, description="User-ID embedding size.")
    attn_dim: int = Field(default=64, ge=1, description="Attention query/key size.")
    max_texts: int = Field(default=128, ge=1, description="Attention looks at a user's last max_texts texts.")
    joint_epochs: int = Field(default=5, ge=0, description="Epochs of joint fusion + quantizer training.")
    joint_lr: float = Field(default=1e-3, gt=0.0, description="Adam learning rate of the joint training.")
    joint_batch_size: int = Field(default=1024, ge=2, description="Users per joint-training step.")
    uniformity_weight: float = Field(
        default=0.1, ge=0.0, description="Weight of the ID-direction uniformity loss."
    )
    token_format: list[str] | None = Field(
        default=None, description="Per-level templates; None: <a_{}>, <b_{}>…"
    )
    seed: int = Field(
        default=0, description="Seed of fusion init, joint training and (unless set) the quantizer."
    )
    device: str = Field(default="cpu", description="Device of the text encoder.")
    encode_batch_size: int = Field(default=1, ge=1, description="Texts per encoder batch (1: bit-exact on "
                                   "every BLAS; more: same-length texts only, see ulmrec_index.encoders).")
    workers: int = Field(default=0, ge=0, description=">1: sentence-transformers multi-process pool size.")
    cache_dir: Path | None = Field(default=None, description="Embedding cache folder (None: no cache).")
    show_progress: bool = Field(default=False, description="Progress bar while encoding.")

    @field_validator("quantizer", mode="before")
    @classmethod
    def _parse_quantizer(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return parse_quantizer_config(value)
        return value
