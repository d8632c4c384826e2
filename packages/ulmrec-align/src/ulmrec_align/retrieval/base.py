"""The retriever interface: anything that scores every item for a batch of user histories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from ulmrec_align.retrieval.config import LRURecConfig
from ulmrec_align.retrieval.data import pack_histories
from ulmrec_align.retrieval.lru import LRURec


@runtime_checkable
class Retriever(Protocol):
    """Scores all ``n_items`` items (0-based dense ids) as the next item of each history."""

    kind: str
    n_items: int

    def score_histories(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(U, n_items)`` float scores, higher is better; no masking applied."""
        ...


class LRURetriever:
    """:class:`Retriever` over a trained :class:`LRURec`: histories are cut to ``max_len`` and packed."""

    kind = "lrurec"

    def __init__(self, *, model: LRURec, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        self.n_items = model.n_items
        self.config: LRURecConfig = model.config

    @torch.no_grad()
    def score_histories(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """Each history becomes ``[0] + last max_len items`` (tokens = id + 1); all are packed in one row."""
        packed = pack_histories(histories, self.config.max_len)
        was_training = self.model.training
        self.model.eval()
        try:
            scores = self.model.packed_scores(torch.from_numpy(packed.tokens).unsqueeze(0).to(self.device),
                                              torch.from_numpy(packed.segments).unsqueeze(0).to(self.device),
                                              torch.from_numpy(packed.last).to(self.device))
        finally:
            self.model.train(was_training)
        return scores.float().cpu()
