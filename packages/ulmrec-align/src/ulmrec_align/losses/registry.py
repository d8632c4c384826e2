"""The training losses, one module each (its ``LOSS``), in the order ``--loss`` lists them.

Adding a loss is a module and a line in :data:`BUILTIN_MODULES` (docs/tuning.md, "Adding a loss"):
:data:`LossName` (the ``Literal`` of ``TrainSettings.loss`` and of ``align train --loss``), the option's help,
the config's description, the collator's extras, the answer-kind check and the experiment report's chance
level all follow from the module's :class:`~ulmrec_align.losses.base.Loss`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ulmrec_align.declarations import declared
from ulmrec_align.losses.base import Loss
from ulmrec_align.prompts.answers.registry import get_answer
from ulmrec_eval.runtime.errors import InputError

BUILTIN_MODULES = (
    "ulmrec_align.losses.tokens",
    "ulmrec_align.losses.letters",
    "ulmrec_align.losses.choices",
    "ulmrec_align.losses.relevance",
)


#: Every loss by name.
LOSSES: dict[str, Loss] = declared(BUILTIN_MODULES, "LOSS", Loss)
LOSS_NAMES = tuple(LOSSES)
if TYPE_CHECKING:
    LossName = str
else:
    LossName = Literal[LOSS_NAMES]


def get_loss(name: str) -> Loss:
    """The loss ``name``; an unknown one lists the registered losses."""
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r} (registered: {', '.join(LOSSES)})")
    return LOSSES[name]


def pairing_error(answer: str, loss: str) -> str | None:
    """Why samples answered by ``answer`` cannot train with ``--loss loss`` (None: they can)."""
    kind, spec = get_answer(answer), get_loss(loss)
    if spec.answers is not None and kind.name not in spec.answers:
        rule = f"--loss {spec.name} trains samples answered by {' or '.join(spec.answers)} only"
    elif kind.losses is not None and spec.name not in kind.losses:
        rule = f"samples answered by {kind.name} train with --loss {' or '.join(kind.losses)} only"
    else:
        return None
    return f"{rule}: these samples answer by {kind.name} and --loss is {spec.name}"
