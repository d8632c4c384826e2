"""Typed configuration of a retriever run: model, training and candidate generation (pydantic, JSON).

Defaults are LlamaRec's LRURec retriever for the Amazon datasets (arXiv 2311.02089, its ``config.py``):
d = 64, 2 blocks, dropout 0.2 (embedding, feed-forward and LRU output), sequences of 50, AdamW lr 1e-3, weight
decay 0.01, eps 1e-9, batch 64, gradient norm clipped at 5, early stopping on Recall@10 with patience 20. No
default was chosen by this project; ``ulmrec retrieve tune`` selects settings for a dataset on its validation
split (docs/retriever.md has what it selected on Beauty).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ulmrec_eval.metrics import parse_metric_key

RETRIEVER_SCHEMA_VERSION = 1


class LRURecConfig(BaseModel):
    """LRURec (Yue et al., arXiv 2310.02367): embedding → [LRU layer → FFN] × blocks → item scores."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["lrurec"] = Field(default="lrurec", description="Model family (registry key).")
    hidden_size: int = Field(default=64, ge=2, description="Item embedding and block width d.")
    num_blocks: int = Field(default=2, ge=1, description="Number of LRU blocks (LRU layer + feed-forward).")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0,
                           description="Dropout on the item embedding and inside the feed-forward layers "
                           "(LlamaRec's 0.2).")
    lru_dropout: float = Field(default=0.2, ge=0.0, lt=1.0,
                               description="Dropout on the LRU layer output before its residual connection "
                               "(LlamaRec's 0.2).")
    state_multiplier: int = Field(default=2, ge=1,
                                  description="Complex state size of the recurrence as a multiple of d.")
    ffn_multiplier: int = Field(default=4, ge=1, description="Feed-forward inner width as a multiple of d.")
    r_min: float = Field(default=0.8, gt=0.0, lt=1.0,
                         description="Ring initialisation: smallest eigenvalue modulus |λ|.")
    r_max: float = Field(default=0.99, gt=0.0, lt=1.0,
                         description="Ring initialisation: largest eigenvalue modulus |λ|.")
    max_phase: float = Field(default=2 * math.pi, gt=0.0,
                             description="Ring initialisation: phases drawn uniformly in [0, max_phase).")
    init_std: float = Field(default=0.02, gt=0.0,
                            description="Std of the truncated normal (cut at ±2 std) initialising weights.")
    max_len: int = Field(default=50, ge=2, description="Input sequences are cut to their last max_len items.")

    @model_validator(mode="after")
    def _ring(self) -> LRURecConfig:
        if self.r_max <= self.r_min:
            raise ValueError(f"r_max ({self.r_max}) must be larger than r_min ({self.r_min})")
        return self


class SASRecConfig(BaseModel):
    """SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence (a baseline retriever)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sasrec"] = Field(default="sasrec", description="Model family (registry key).")
    hidden_size: int = Field(default=64, ge=2, description="Item/position embedding and block width d.")
    num_blocks: int = Field(default=2, ge=1, description="Transformer blocks (pre-LayerNorm).")
    num_heads: int = Field(default=2, ge=1, description="Attention heads (must divide hidden_size).")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="Dropout on embeddings, attention, FFN.")
    init_std: float = Field(default=0.02, gt=0.0, description="Std of the truncated normal weight init.")
    max_len: int = Field(default=50, ge=2, description="Input sequences are cut to their last max_len items.")

    @model_validator(mode="after")
    def _heads(self) -> SASRecConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        return self


ModelConfig = Annotated[LRURecConfig | SASRecConfig, Field(discriminator="kind")]


class TrainConfig(BaseModel):
    """Optimisation, validation and checkpointing."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=42, description="Seeds initialisation, dropout and the per-epoch data order.")
    epochs: int = Field(default=500, ge=1, description="Maximum epochs (early stopping usually ends first).")
    batch_size: int = Field(default=64, ge=1, description="Training windows per optimisation step.")
    lr: float = Field(default=1e-3, gt=0.0, description="AdamW learning rate (constant).")
    weight_decay: float = Field(default=0.01, ge=0.0,
                                description="AdamW decoupled weight decay (not on biases, LayerNorm or the "
                                "recurrence parameters ν, θ, γ).")
    adam_eps: float = Field(default=1e-9, gt=0.0, description="AdamW epsilon.")
    adam_betas: tuple[float, float] = Field(default=(0.9, 0.999), description="AdamW betas.")
    max_grad_norm: float | None = Field(default=5.0, gt=0.0,
                                        description="Clip the global gradient norm (None: no clipping).")
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0, description="Cross-entropy label smoothing.")
    window_stride: int | None = Field(default=None, ge=1,
                                      description="Stride of the sliding window over training histories "
                                      "longer than max_len (None: max_len, i.e. non-overlapping windows).")
    eval_batch_size: int = Field(default=1024, ge=1, description="Users scored at once during evaluation.")
    best_metric: str = Field(default="recall@10",
                             description="Validation metric for model selection and early stopping "
                             "(e.g. recall@10 or ndcg@10).")
    patience: int = Field(default=20, ge=1,
                          description="Stop after this many validations without improvement of best_metric.")
    validate_every_epochs: int = Field(default=1, ge=1, description="Validate every this many epochs.")
    mask_history_in_validation: bool = Field(default=True,
                                             description="Mask the input items when scoring for validation.")
    max_minutes: float | None = Field(default=None, gt=0.0,
                                      description="Wall-clock budget for training (across resumes): no "
                                      "epoch is started that is expected to end past it.")
    checkpoint_every_steps: int = Field(default=500, ge=1,
                                        description="Write a resumable checkpoint every this many steps "
                                        "(and at every validation and on Ctrl-C).")
    num_threads: int | None = Field(default=None, ge=1,
                                    description="torch.set_num_threads for the run (None: torch's default).")

    @field_validator("best_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        name, k = parse_metric_key(value)
        return f"{name}@{k}"


class CandidateConfig(BaseModel):
    """How candidate sets for the LLM ranker are drawn from the retriever's scores."""

    model_config = ConfigDict(extra="forbid")

    pool_size: int = Field(default=20, ge=1, description="Candidates per user (the top pool_size items).")
    order: Literal["score", "shuffled", "item_id"] = Field(
        default="score",
        description="Order of the written candidate list: by descending score, a seeded shuffle (so a ranker "
        "cannot learn the retriever's order), or by item id.")
    shuffle_seed: int = Field(default=0, description="Seed of the 'shuffled' order.")
    mask_history: bool = Field(default=True,
                               description="Never propose an item of the user's input sequence (the whole "
                               "history, not only its last max_len items).")
    splits: tuple[Literal["valid", "test"], ...] = Field(default=("valid", "test"),
                                                         description="Splits to write candidates for.")
    metric_ks: tuple[int, ...] = Field(default=(1, 5, 10, 20),
                                       description="Cut-offs of the full-ranking metrics.")


class RetrieverConfig(BaseModel):
    """Everything that defines a retriever run; saved as ``config.json`` next to the model."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = RETRIEVER_SCHEMA_VERSION
    model: ModelConfig = Field(default_factory=LRURecConfig, description="lrurec (default) or sasrec.")
    train: TrainConfig = Field(default_factory=TrainConfig)
    candidates: CandidateConfig = Field(default_factory=CandidateConfig)

    @field_validator("model", mode="before")
    @classmethod
    def _default_kind(cls, value: Any) -> Any:
        """A ``model`` table without ``kind`` is an LRURec one (the default model)."""
        if isinstance(value, dict) and "kind" not in value:
            return {**value, "kind": "lrurec"}
        return value

    @model_validator(mode="after")
    def _best_metric_computed(self) -> RetrieverConfig:
        # validation computes the metrics at candidates.metric_ks only: selecting on another K would fail
        # with a KeyError after the first epoch
        k = parse_metric_key(self.train.best_metric)[1]
        if k not in self.candidates.metric_ks:
            raise ValueError(f"train.best_metric {self.train.best_metric!r} needs K={k} among "
                             f"candidates.metric_ks {list(self.candidates.metric_ks)}")
        return self

    def training_hash(self) -> str:
        """sha256 of the fields that change the trained weights (a resumed run must match it)."""
        relevant = {
            "model": self.model.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json",
                                           exclude={"epochs", "patience", "max_minutes", "eval_batch_size",
                                                    "checkpoint_every_steps", "num_threads"}),
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode("utf-8")).hexdigest()
