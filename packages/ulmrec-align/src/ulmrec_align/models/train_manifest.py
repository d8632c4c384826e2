"""The tuned-model folder ``T/`` that ``ulmrec align train`` writes and ``ulmrec align rank`` reads: its
layout and its manifest (``T/train_manifest.json``: the settings it was tuned with and how it went).

It lives below both ``tuning`` (which writes it) and ``ranking`` (which loads it), so that ranking never
imports tuning; :mod:`ulmrec_align.tuning.config` re-exports the settings for ``align train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ulmrec_align.losses.registry import LOSSES, LossName
from ulmrec_align.models.loading import Quantization
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import read_json_model

TRAIN_SCHEMA_VERSION = 2
#: The choices of ``align train --scheduler`` and ``--loss`` (:class:`TrainSettings`; the losses are the
#: registered ones, :mod:`ulmrec_align.losses.registry`).
ScheduleKind = Literal["cosine", "linear", "constant"]
LossKind = LossName
#: The files and folders of ``T/``.
TRAIN_MANIFEST = "train_manifest.json"
ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"


class LoraSettings(BaseModel):
    """LoRA adapter settings (paper defaults: r=8, alpha=32, dropout 0.05 on q_proj/v_proj; ``targets =
    ["all-linear"]`` puts an adapter on every linear layer but the output head)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(default=8, ge=1, description="Rank of the low-rank update.")
    alpha: float = Field(default=32.0, gt=0, description="The update is scaled by alpha / r.")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter's input.")
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"],
                               description="Module names that get an adapter.")
    top_layers: int | None = Field(
        default=None, ge=1, description="Adapters on the top K decoder layers only (None: on every layer). "
        "Nothing below them trains, so the backward pass stops there and a step costs less on CPU.")


class TrainSettings(BaseModel):
    """Optimisation settings; with ``max_steps`` set, ``epochs`` is ignored (Trainer semantics).

    Defaults are this project's CPU-sized choices (docs/tuning.md says which were chosen on validation);
    the paper's release uses batch 16, 100 warm-up steps and linear decay (``configs/beauty-gpu.toml``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float = Field(default=1.0, gt=0, description="Passes over the training samples.")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; overrides epochs.")
    batch_size: int = Field(default=4, ge=1, description="Samples per device per forward pass.")
    grad_accum: int = Field(default=1, ge=1, description="Forward passes per optimizer step.")
    lr: float = Field(default=1e-4, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int | None = Field(default=None, ge=0, description="Optimizer steps of linear warm-up; "
                                     "None = the first 5 % of the run (by steps or by the time budget).")
    scheduler: ScheduleKind = Field(
        default="cosine", description="Decay after warm-up, over the run that actually happens: the step "
        "count or the time budget, whichever ends it (tuning/schedule.py).")
    loss: LossKind = Field(
        default="letters", description="; ".join(f"'{loss.name}': {loss.summary}" for loss in LOSSES.values())
        + " (ulmrec_align/losses/).")
    retriever_prior: float | Literal["auto"] = Field(
        default=0.0, description="The relevance loss on pools that carry the retriever's scores: add "
        "β · z(retriever) to the LLM's log-odds, softmax(s + β z(r)), so the LLM learns a correction to the "
        "retriever rather than what it already knows. A number β >= 0, or 'auto': β maximising the "
        "likelihood of the targets under softmax(β z(r)) on the validation pools (never the training "
        "prefixes, where the retriever is overconfident). 0: the LLM alone.")
    max_grad_norm: float = Field(default=1.0, ge=0)
    max_length: int = Field(default=2048, ge=16,
                            description="Prompt + response tokens; longer prompts are cut from the left.")
    group_by_length: bool = Field(default=False, description="Batches of similar length (less padding, but "
                                  "batches of one task: the release does not group).")
    gradient_checkpointing: bool | None = Field(
        default=None, description="Non-reentrant activation checkpointing; None = on for CUDA, off on CPU "
        "(where memory is not the limit and recompute costs a third of the step).")
    save_steps: int = Field(default=50, ge=1, description="Checkpoint every N optimizer steps.")
    eval_steps: int | None = Field(default=None, ge=1, description="Validate every N steps (default: "
                                   "save_steps); validation also runs at the end.")
    valid_users: int | None = Field(default=200, ge=1, description="Validation ranking samples used.")
    code_valid_users: int = Field(default=40, ge=0, description="Validation users whose code-task samples "
                                  "(preference -> index, history -> index) are scored at each validation: "
                                  "reported, never used to choose, so fewer than the ranking's (at 120 "
                                  "users they took a third of the demo's validation); 0 = none.")
    eval_batch_size: int = Field(default=8, ge=1)
    patience: int | None = Field(default=5, ge=1, description="Validations without a better NDCG@10 before "
                                 "stopping; None = never stop early.")
    max_minutes: float | None = Field(default=None, gt=0, description="Stop (and keep the best) after this "
                                      "much training time; the schedule decays over it.")
    keep_checkpoints: int = Field(default=2, ge=1, description="Most recent checkpoints kept for --resume.")
    seed: int = 42
    quantization: Quantization = "auto"
    device: str = "cpu"
    num_processes: int = Field(default=1, ge=1, description="Data-parallel processes (Accelerate/DDP).")

    @model_validator(mode="before")
    @classmethod
    def _older_fields(cls, data: Any) -> Any:
        """Schema 1 had ``warmup_ratio`` (never applied as a ratio) and ``constant_with_warmup``."""
        if isinstance(data, dict):
            data = dict(data)
            data.pop("warmup_ratio", None)
            if data.get("scheduler") == "constant_with_warmup":
                data["scheduler"] = "constant"
        return data

    @model_validator(mode="after")
    def _finite_prior(self) -> TrainSettings:
        prior = self.retriever_prior
        if prior != "auto" and not (prior >= 0 and prior != float("inf")):
            raise ValueError(f"retriever_prior must be 'auto' or a finite number >= 0, got {prior}")
        return self

    @property
    def validate_every(self) -> int:
        return self.eval_steps or self.save_steps

    @property
    def checkpointing(self) -> bool:
        """Whether activation checkpointing is on (the default follows the device)."""
        if self.gradient_checkpointing is not None:
            return self.gradient_checkpointing
        return self.device.startswith("cuda")


class BaseModelInfo(BaseModel):
    """Which base model was tuned."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="As given to --model (e.g. 'smollm2').")
    path: str = Field(description="Resolved local folder or hub id.")
    identity: str = Field(description="'sha256:<hex>' of the folder's weight/config/tokenizer files, or "
                          "'hub:<id>'.")


class ValidationPoint(BaseModel):
    """One validation: NDCG@10 of the scores the test ranks by (calibrated letters on shuffled letters, or
    relevance fused with the retriever) and of the LLM's scores alone; :attr:`selection_key` picks the
    adapter kept."""

    model_config = ConfigDict(extra="forbid")

    step: int
    ndcg_at_10: float
    ndcg_at_10_raw: float | None = None
    fusion_weight: float | None = Field(default=None, description="Relevance answers: the W of z(LLM) + "
                                        "W·z(retriever) best on these validation users (ndcg_at_10 is its "
                                        "NDCG@10).")
    task_loss: dict[str, float] = Field(default_factory=dict,
                                        description="Code task -> validation response-token loss.")
    task_exact: dict[str, float] = Field(default_factory=dict,
                                         description="Code task -> share of codes written exactly.")

    @property
    def selection_key(self) -> tuple[float, float]:
        """How validations compare (the greater keeps its adapter): ``(ndcg_at_10, 0)``; for relevance answers
        (those with a ``fusion_weight``) ``(ndcg_at_10_raw, ndcg_at_10)``, the LLM alone first. The fused
        score moves only where the LLM reorders the retriever's near-ties, a few users: between adapters of
        an LLM near random order it differs by noise, and a weight below the top of the grid is then fitted
        to those few users (docs/tuning.md)."""
        if self.fusion_weight is not None and self.ndcg_at_10_raw is not None:
            return self.ndcg_at_10_raw, self.ndcg_at_10
        return self.ndcg_at_10, 0.0


class CurvePoint(BaseModel):
    """One logged training step: loss (all tasks, mean per loss item), learning rate, per-task loss."""

    model_config = ConfigDict(extra="forbid")

    step: int
    loss: float
    lr: float
    elapsed_seconds: float = 0.0
    task_loss: dict[str, float] = Field(default_factory=dict)


class TrainManifest(BaseModel):
    """``T/train_manifest.json``: what was tuned from what, with which settings, and how it went."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = TRAIN_SCHEMA_VERSION
    kind: Literal["lora-adapter"] = "lora-adapter"
    base_model: BaseModelInfo
    samples_path: str
    samples_manifest_sha256: str = Field(description="sha256 of the samples folder's manifest.json.")
    samples_files_sha256: dict[str, str] = Field(
        default_factory=dict, description="sha256 of train.jsonl and valid.jsonl (what --resume checks).")
    samples_config: dict[str, Any] = Field(description="The samples' AlignConfig (as built).")
    prompt: PromptConfig = Field(description="Prompt sizes the samples were built with (the ranker reuses).")
    index_tokens: IndexTokens
    added_token_ids: list[int] = Field(default_factory=list, description="Ids of added code tokens.")
    lora: LoraSettings
    train: TrainSettings
    quantization: Literal["nf4", "none"] = Field(description="What was actually used.")
    device: str
    world_size: int = 1
    train_samples: int
    valid_samples: int
    steps: int = 0
    samples_seen: int = 0
    tokens_seen: int = Field(default=0, description="Non-padding tokens fed to the model (all processes).")
    elapsed_seconds: float = 0.0
    best_step: int | None = None
    best_ndcg_at_10: float | None = Field(default=None, description="Validation NDCG@10 of the kept adapter.")
    history: list[ValidationPoint] = Field(default_factory=list)
    curve: list[CurvePoint] = Field(default_factory=list, description="Loss and learning rate by step.")
    letter_prior: list[float] | None = Field(
        default=None, description="Log-probability prior of each candidate letter (A, B, ...) of the kept "
        "adapter, estimated on shuffled-letter validation prompts; `align rank --calibration prior` "
        "subtracts it.")
    index_sha256: str | None = Field(default=None, description="sha256 of the user index the samples were "
                                     "built with (None = no index).")
    prompts_cut: int = Field(default=0, description="Training prompts cut from the left by max_length.")
    retriever_prior_weight: float | None = Field(
        default=None, description="The β the relevance loss added the retriever's standardised scores with "
        "(`retriever_prior`, fitted when 'auto'); None: the LLM trained alone.")
    stop_reason: str = ""
    status: Literal["running", "complete"] = "running"
    versions: dict[str, str] = Field(default_factory=dict)

    @property
    def fusion(self) -> tuple[float, int] | None:
        """``(W, validation users)`` chosen for the kept adapter while tuning (relevance answers), or None."""
        best = next((p for p in self.history if p.step == self.best_step), None)
        if best is None or best.fusion_weight is None:
            return None
        return best.fusion_weight, self.valid_samples


def read_train_manifest(folder: str | Path) -> TrainManifest:
    """``folder/train_manifest.json``; a folder without one is not a tuned model."""
    path = Path(folder) / TRAIN_MANIFEST
    if not path.is_file():
        raise InputError("not a tuned model folder (no train_manifest.json); run `ulmrec align train`",
                         path=folder)
    return read_json_model(path, TrainManifest)
