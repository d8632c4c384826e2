"""``tokens``: the causal-LM cross-entropy of every response token over the full vocabulary (the paper)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ulmrec_align.losses.base import Loss

if TYPE_CHECKING:
    import torch


class Tokens(Loss):
    name = "tokens"
    summary = "every response token over the full vocabulary (the paper)"

    def __call__(self, model: Any, batch: dict[str, torch.Tensor], *, letter_ids: Sequence[int],
                 yes_no: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from ulmrec_align.losses.maths import response_loss

        return response_loss(model, batch, letters=False, letter_ids=letter_ids)


LOSS = Tokens()
