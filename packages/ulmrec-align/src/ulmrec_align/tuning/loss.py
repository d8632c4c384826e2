"""The tuning loss of ``ulmrec align train --loss``: :func:`alignment_loss` hands the batch to the registered
loss of that name (:mod:`ulmrec_align.losses.registry`; one module per loss, each with its formula:
``tokens``, the paper's; ``letters``; ``choices``; ``relevance``). The pieces they share, with the vocabulary
projection only where a loss is taken, are in :mod:`ulmrec_align.losses.maths` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ulmrec_align.losses.maths import (
    choice_scores,
    kept_positions,
    pool_relevance,
    response_logits,
    token_losses,
)
from ulmrec_align.losses.registry import LossName, get_loss

if TYPE_CHECKING:
    import torch

#: A registered loss name (``TrainSettings.loss``).
LossKind = LossName
__all__ = ["LossKind", "alignment_loss", "choice_scores", "kept_positions", "pool_relevance",
           "response_logits", "token_losses"]


def alignment_loss(model: Any, batch: dict[str, torch.Tensor], *, kind: LossKind, letter_ids: Sequence[int],
                   yes_no: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, row_loss_sum (B,), row_items (B,))`` of a left-padded batch.

    ``batch``: ``input_ids``, ``attention_mask``, ``position_ids``, ``labels`` (B, L) and ``n_letters`` (B,)
    (0 for non-ranking samples); under a loss with ``pools`` (``choices``, ``relevance``) also the
    ``choice_*`` tensors of the rows that carry their pool (:func:`choice_scores`, :func:`pool_relevance`;
    ``yes_no`` = the answer ids).
    """
    return get_loss(kind)(model, batch, letter_ids=letter_ids, yes_no=yes_no)
