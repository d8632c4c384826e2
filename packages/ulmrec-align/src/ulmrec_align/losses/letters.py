"""``letters``: ranking samples (``n_letters > 0``) learn a cross-entropy over their own candidate letters
only, ``−log softmax(z[ℓ_1..ℓ_n])[target]`` at the position that emits the letter, where ``ℓ_j`` is the first
token id of letter ``j``'s training target (the ids the ranker reads); other tasks keep the token loss. It
teaches exactly the comparison the ranker makes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ulmrec_align.losses.base import Loss

if TYPE_CHECKING:
    import torch


class Letters(Loss):
    name = "letters"
    summary = "ranking samples learn a cross-entropy over their candidate letters"
    ranking_answers = ("letter",)

    def __call__(self, model: Any, batch: dict[str, torch.Tensor], *, letter_ids: Sequence[int],
                 yes_no: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from ulmrec_align.losses.maths import response_loss

        return response_loss(model, batch, letters=True, letter_ids=letter_ids)


LOSS = Letters()
