"""The retriever interface: anything that scores every item for a batch of user histories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ulmrec_align.retrieval.config import LRURecConfig, SASRecConfig
from ulmrec_align.retrieval.data import left_pad, pack_histories
from ulmrec_align.retrieval.lru import LRURec
from ulmrec_align.retrieval.sasrec import SASRec

#: The sequence models behind :class:`SequenceRetriever` (same token convention, loss and scoring methods).
SequenceModel = LRURec | SASRec


@runtime_checkable
class Retriever(Protocol):
    """Scores all ``n_items`` items (0-based dense ids) as the next item of each history."""

    kind: str
    n_items: int

    def score_histories(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(U, n_items)`` float scores, higher is better; no masking applied."""
        ...


class SequenceRetriever:
    """:class:`Retriever` over a trained sequence model (LRURec or SASRec): histories cut to ``max_len``."""

    def __init__(self, *, model: SequenceModel, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        self.n_items = model.n_items
        self.config: LRURecConfig | SASRecConfig = model.config
        self.kind: str = model.config.kind

    @torch.no_grad()
    def score_histories(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """Each history becomes ``[0] + last max_len items`` (tokens = id + 1); all are packed in one row.
        Returns ``(U, n_items)`` = :meth:`user_states` · E[1:]ᵀ + bias."""
        return self.model.item_scores(self._last_hidden(histories)).float().cpu()

    @torch.no_grad()
    def user_states(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """The model's representation of each user after their history: ``(U, d)`` float32, the vector its
        next-item scores are dot products with (the collaborative user vector)."""
        return self._last_hidden(histories).float().cpu()

    def _last_hidden(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """Hidden state at the last position of each history, ``(U, d)`` on the model's device."""
        was_training = self.model.training
        self.model.eval()
        try:
            if isinstance(self.model, SASRec):
                # attention is quadratic in the row length: score SASRec users as left-padded rows instead,
                # [0] + the last max_len tokens (left-padded with 0)
                padded = left_pad(histories, self.config.max_len)
                tokens = np.concatenate([np.zeros((len(histories), 1), dtype=np.int64), padded], axis=1)
                return self.model(torch.from_numpy(tokens).to(self.device))[:, -1]
            packed = pack_histories(histories, self.config.max_len)

            def put(array: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(array).to(self.device)

            hidden = self.model(put(packed.tokens).unsqueeze(0), put(packed.segments).unsqueeze(0))
            return hidden[0, put(packed.last)]
        finally:
            self.model.train(was_training)


#: Former name, kept for callers of the first version.
LRURetriever = SequenceRetriever
