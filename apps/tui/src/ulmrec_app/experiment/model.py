"""What an ablation report holds: the cut-offs K, the history-length buckets, one run's data
(:class:`RunData`) and the report itself (:class:`ExperimentReport`); read by ``report_data`` (which fills
:class:`RunData`), ``report_stats`` (which computes the report), ``report_render`` and ``plots``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ulmrec_app.pipeline.manifest import StageManifest
from ulmrec_eval.schemas import MetricComparison

#: Cut-offs of the metrics by K.
KS = (1, 5, 10, 20)
#: History-length buckets ``(min items, max items or None, label)``.
BUCKETS: tuple[tuple[int, int | None, str], ...] = ((1, 4, "1-4"), (5, 9, "5-9"), (10, None, "10+"))


@dataclass
class RunData:
    """One run's test predictions (LLM and the retriever's order of the same candidates) and records."""

    name: str
    variant: str
    seed: int
    folder: Path
    users: list[Any]
    llm_ranks: np.ndarray
    retriever_ranks: np.ndarray
    in_subset: np.ndarray
    history: np.ndarray
    cold: np.ndarray  # (U,) bool: held out of LLM training (align build --cold-share)
    n_candidates: int
    curve: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    steps: int
    stages: dict[str, StageManifest]
    ranking_loss: bool = True  # its next-item loss is over the candidates (ln N applies), not title tokens
    candidates_hash: str | None = None  # sha256 of the retriever's candidates.jsonl it ranked
    dataset_hash: str | None = None     # output hash of its data stage (None: no stage record)
    kind: str | None = None  # report_data.KINDS: index, noindex, text, permuted, random; None: unknown
    fusion_weight: float | None = None  # W of z(LLM) + W·z(retriever) its ranking used; None: not fused


class VariantRow(BaseModel):
    variant: str
    seeds: list[int]
    n_users: int = Field(description="Subset users per seed (mean).")
    subset: dict[str, float] = Field(description="Mean over seeds of the subset metrics.")
    overall: dict[str, float] = Field(description="Mean over seeds of the overall metrics (K <= N).")
    buckets: dict[str, float] = Field(description="Subset NDCG@10 by history length bucket.")
    cold_users: int = Field(default=0, description="Subset users held out of LLM training, per seed (mean).")
    cold_subset: dict[str, float] = Field(default_factory=dict,
                                          description="Subset metrics over the cold-start users only.")
    last_next_item_loss: float | None = None
    ranking_loss: bool = Field(default=True, description="The next-item loss is a cross-entropy over the "
                               "candidates (letters, or `--loss choices`): ln(N) is its chance level. False: "
                               "the token loss of title answers, per title token, to which ln(N) does not "
                               "apply.")
    steps: int = 0
    wall_seconds: float = 0.0
    fusion_weights: list[float | None] = Field(
        default_factory=list, description="Per seed: the W its ranking was fused with the retriever at "
        "(z(LLM) + W·z(retriever), chosen on validation); None: the LLM alone.")


class ExperimentReport(BaseModel):
    """Everything ``report.md`` says, as data."""

    schema_version: int = 1
    runs: list[str]
    n_candidates: int
    chance_loss: float = Field(
        description="ln(number of candidates): a ranking loss above it learned nothing."
    )
    rows: list[VariantRow]
    comparisons: dict[str, list[MetricComparison]] = Field(
        description="'B − A' → paired comparisons over (seed, user) pairs of the subset."
    )
    learned: bool
    baseline: str | None = Field(
        default="full", description="The variant the others are compared with (full ULMRec: an index, no "
        "control), chosen by what the runs are (their align stage records), not by folder names; None: "
        "none could be told among the runs.")
    index: dict[str, Any] = Field(default_factory=dict)
    hardware: dict[str, str] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    plots: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
