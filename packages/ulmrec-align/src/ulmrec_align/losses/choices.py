"""``choices``: ``letters`` for letter samples, and for samples answered by title that carry their pool (R
samples of N choices) a listwise cross-entropy over the choices' scores, ``−log softmax_j(s_j)[target]`` with
the score the title ranker reads: ``s_j = log p(choice_j + EOS | prompt) − sg[log p(choice_j + EOS | ∅)]``,
each summed over the choice's ids, ``∅`` the content-free prompt (``sg`` = no gradient: the model learns what
the prompt adds, not to move the prior), so training and ranking compare the same numbers. The prompt is read
once and its key/value cache repeated for its N choices (:func:`~ulmrec_align.losses.maths.choice_scores`),
so a sample costs ``|prompt| + N·|choice|`` tokens; gradients flow through the cache into the prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ulmrec_align.losses.base import Loss

if TYPE_CHECKING:
    import torch


class Choices(Loss):
    name = "choices"
    summary = ("letters, and samples answered by title a cross-entropy over their candidates' title "
               "likelihoods")
    pools = True
    null_prompt = True
    ranking_answers = ("letter", "title")

    def __call__(self, model: Any, batch: dict[str, torch.Tensor], *, letter_ids: Sequence[int],
                 yes_no: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from ulmrec_align.losses.maths import choice_scores, pool_loss, response_loss

        if "choice_rows" in batch:
            return pool_loss(model, batch, choice_scores(model, batch), letter_ids=letter_ids)
        return response_loss(model, batch, letters=True, letter_ids=letter_ids)


LOSS = Choices()
