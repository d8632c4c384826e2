"""What a training loss declares (``--loss NAME``): its name and help, what its batches carry, which answer
kinds it trains, and how it turns a batch into a loss.

A loss is one module under :mod:`ulmrec_align.losses` with a module-level ``LOSS`` (an instance of a
:class:`Loss` subclass); the registry lists the module. The module is imported with the config models (it
names the choices of ``TrainSettings.loss``), so it imports torch and the model code only inside
:meth:`Loss.__call__` (the shared pieces are in :mod:`ulmrec_align.losses.maths`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch


class Loss:
    """One ``--loss``. Subclasses set the class attributes and implement :meth:`__call__`."""

    #: The lowercase name (``--loss NAME``, ``TrainSettings.loss``).
    name: ClassVar[str]
    #: One line for ``--loss``'s help and ``TrainSettings.loss``'s description.
    summary: ClassVar[str]
    #: The collator attaches each pooled row's candidates (``choice_*`` tensors,
    #: :class:`~ulmrec_align.tuning.data.PadCollator` with ``choices``).
    pools: ClassVar[bool] = False
    #: ...and the content-free title prompt (``choice_null_ids``), whose likelihoods are subtracted.
    null_prompt: ClassVar[bool] = False
    #: The loss reads the yes/no answer ids (``yes_no``) of relevance answers.
    yes_no: ClassVar[bool] = False
    #: The only answer kinds it trains (None: every kind whose own ``losses`` admit it).
    answers: ClassVar[tuple[str, ...] | None] = None
    #: Answer kinds whose next-item loss under it is a cross-entropy over the candidates, so that ln(number
    #: of candidates) is its chance level (``ulmrec experiment report``).
    ranking_answers: ClassVar[tuple[str, ...]] = ()

    def __call__(self, model: Any, batch: dict[str, torch.Tensor], *, letter_ids: Sequence[int],
                 yes_no: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, row_loss_sum (B,), row_items (B,))`` of a left-padded batch
        (:func:`ulmrec_align.tuning.loss.alignment_loss`)."""
        raise NotImplementedError

    def ranks_candidates(self, answer: str) -> bool:
        """Whether samples answered by ``answer`` learn a cross-entropy over their candidates here."""
        return answer in self.ranking_answers
