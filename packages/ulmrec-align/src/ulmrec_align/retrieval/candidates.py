"""Full-ranking evaluation and candidate sets of a :class:`Retriever` (metrics: :mod:`ulmrec_eval.metrics`).

For each user of a split: score all items, optionally mask the items of the input history (score ``-inf``),
rank the target against all items (ties pessimistic) and keep the top ``pool_size`` items as candidates,
ordered by descending score with ties broken by item id (then re-ordered as configured). A masked item is
never a candidate: when fewer than ``pool_size`` items are unmasked the list is shorter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.base import Retriever
from ulmrec_align.retrieval.config import CandidateConfig
from ulmrec_align.retrieval.data import EvalInputs, history_mask_indices
from ulmrec_eval.metrics import compute_metrics, target_ranks
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_jsonl, iter_jsonl_models

CANDIDATES_SCHEMA_VERSION = 1


class CandidateRow(BaseModel):
    """One ``candidates.jsonl`` row: a user's retrieved candidates for one split (also an ``ulmrec-eval``
    prediction: ``user_id``, ``target``, ``candidates`` + ``scores``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = CANDIDATES_SCHEMA_VERSION
    user_id: int = Field(ge=0, description="Dense user id of the prepared dataset.")
    raw_user_id: str
    split: Literal["valid", "test"]
    candidates: list[int] = Field(description="Dense item ids, in the configured order (default: by score).")
    scores: list[float] = Field(description="The retriever's float32 scores, written exactly.")
    target: int
    target_in_candidates: bool
    history_length: int = Field(ge=0, description="Length of the input history.")


def read_candidates(path: str | Path, split: str | None = None) -> dict[tuple[str, int], CandidateRow]:
    """``(split, dense user id) -> row``; a repeated pair names the file and line."""
    out: dict[tuple[str, int], CandidateRow] = {}
    for number, row in iter_jsonl_models(path, CandidateRow):
        if split is not None and row.split != split:
            continue
        key = (row.split, row.user_id)
        if key in out:
            raise InputError(f"user {row.user_id} repeats in split {row.split!r}", path=path, line=number)
        out[key] = row
    return out


#: Candidate slot left empty because fewer than ``pool_size`` items are unmasked (dropped from the output).
MASKED = -1


@dataclass(frozen=True)
class SplitResult:
    """Per-user outcome of one split: 1-based full-ranking ``ranks`` (U,); top-k ids and scores (U, k)."""

    inputs: EvalInputs
    ranks: npt.NDArray[np.int64]
    top_items: npt.NDArray[np.int64] | None
    top_scores: npt.NDArray[np.float32] | None

    def metrics(self, ks: tuple[int, ...]) -> dict[str, float]:
        """Recall/MRR/NDCG at each K over all users (full ranking)."""
        return compute_metrics(self.ranks, ks)

    def target_in_top(self) -> float:
        """Fraction of users whose target is among their candidates."""
        if self.top_items is None:
            raise ValueError("no candidates were kept (pool_size=None)")
        return float((self.top_items == self.inputs.targets[:, None]).any(axis=1).mean())


def top_k(scores: torch.Tensor, k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top ``k`` columns per row by descending score, ties broken by ascending column: ``(ids, scores)``."""
    k = min(k, scores.shape[1])
    values = scores.numpy()
    part = np.argpartition(-values, k - 1, axis=1)[:, :k] if k < values.shape[1] else \
        np.tile(np.arange(values.shape[1]), (values.shape[0], 1))
    picked = np.take_along_axis(values, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return ids, np.take_along_axis(picked, order, axis=1).astype(np.float32)


def evaluate_split(retriever: Retriever, inputs: EvalInputs, *, batch_size: int, mask_history: bool,
                   pool_size: int | None) -> SplitResult:
    """Score every user of ``inputs`` in batches: full-ranking ranks and optionally the top ``pool_size``."""
    ranks = np.empty(len(inputs), dtype=np.int64)
    tops: list[npt.NDArray[np.int64]] = []
    top_scores: list[npt.NDArray[np.float32]] = []
    for start in range(0, len(inputs), batch_size):
        rows = np.arange(start, min(start + batch_size, len(inputs)))
        histories = [inputs.histories[r] for r in rows]
        scores = retriever.score_histories(histories)                       # (b, N)
        if mask_history:
            r, c = history_mask_indices(histories)
            scores[torch.from_numpy(r), torch.from_numpy(c)] = -torch.inf
        ranks[rows] = target_ranks(scores.numpy(), inputs.targets[rows])
        if pool_size is not None:
            ids, vals = top_k(scores, pool_size)
            ids[~np.isfinite(vals)] = MASKED                                  # fewer unmasked items than k
            tops.append(ids)
            top_scores.append(vals)
    if pool_size is None:
        return SplitResult(inputs=inputs, ranks=ranks, top_items=None, top_scores=None)
    width = min(pool_size, retriever.n_items)
    return SplitResult(inputs=inputs, ranks=ranks,
                       top_items=np.concatenate(tops) if tops else np.zeros((0, width), dtype=np.int64),
                       top_scores=(np.concatenate(top_scores) if top_scores
                                   else np.zeros((0, width), np.float32)))


def candidate_rows(result: SplitResult, dataset: PreparedDataset,
                   config: CandidateConfig) -> Iterator[CandidateRow]:
    """One ``candidates.jsonl`` row per user (see :func:`write_candidates`)."""
    if result.top_items is None or result.top_scores is None:
        raise ValueError("no candidates were kept (pool_size=None)")
    inputs = result.inputs
    rng = np.random.default_rng([config.shuffle_seed, 0 if inputs.split == "valid" else 1])
    for row in range(len(inputs)):
        keep = result.top_items[row] != MASKED
        ids, scores = result.top_items[row][keep], result.top_scores[row][keep]
        if config.order == "shuffled":
            order = rng.permutation(len(ids))
            ids, scores = ids[order], scores[order]
        elif config.order == "item_id":
            order = np.argsort(ids, kind="stable")
            ids, scores = ids[order], scores[order]
        user_id = int(inputs.user_ids[row])
        target = int(inputs.targets[row])
        yield CandidateRow(
            user_id=user_id,
            raw_user_id=dataset.users[user_id].raw_id,
            split="valid" if inputs.split == "valid" else "test",
            candidates=ids.tolist(),
            scores=[float(s) for s in scores],          # float32 -> double is exact; JSON keeps it exactly
            target=target,
            target_in_candidates=bool((ids == target).any()),
            history_length=len(inputs.histories[row]),
        )


def write_candidates(path: str | Path, results: list[SplitResult], dataset: PreparedDataset,
                     config: CandidateConfig) -> int:
    """Write ``candidates.jsonl`` atomically: per user ``user_id`` (dense), ``raw_user_id``, ``split``
    (valid/test), ``candidates`` (dense item ids), ``scores``, ``target``, ``target_in_candidates`` and
    ``history_length`` (length of the input history). Returns the number of rows."""
    return atomic_write_jsonl(path, (row for result in results
                                     for row in candidate_rows(result, dataset, config)))
