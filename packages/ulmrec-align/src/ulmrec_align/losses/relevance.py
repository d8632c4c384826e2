"""``relevance``: for samples answered by relevance (their pool's continuations in ``choice_*``), a listwise
cross-entropy ``−log softmax_j(s_j)[target]`` over the pool with ``s_j = z_yes − z_no`` at the last token of
candidate ``j``'s continuation read after the prompt
(:func:`ulmrec_align.ranking.scorer.relevance_logits`, the ranker's score), plus ``β · z(retriever)_j``
with ``align train --retriever-prior β`` (the batch's ``choice_offset``); other rows as ``letters``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ulmrec_align.losses.base import Loss

if TYPE_CHECKING:
    import torch


class Relevance(Loss):
    name = "relevance"
    summary = "samples answered by relevance a cross-entropy over their pool's yes/no log-odds"
    pools = True
    yes_no = True
    answers = ("relevance",)
    ranking_answers = ("relevance",)   # a cross-entropy over the pool: at or above ln N it learned nothing

    def __call__(self, model: Any, batch: dict[str, torch.Tensor], *, letter_ids: Sequence[int],
                 yes_no: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from ulmrec_align.losses.maths import pool_loss, pool_relevance, response_loss

        if "choice_rows" not in batch:
            return response_loss(model, batch, letters=True, letter_ids=letter_ids)
        if yes_no is None:
            raise ValueError("the relevance loss needs the ids of its yes/no answers")
        scores = pool_relevance(model, batch, yes_no)
        if "choice_offset" in batch:   # --retriever-prior: the LLM learns a correction to β z(retriever)
            scores = scores + batch["choice_offset"].to(scores.dtype)
        return pool_loss(model, batch, scores, letter_ids=letter_ids)


LOSS = Relevance()
