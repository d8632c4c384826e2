"""The answer kinds, one module each (its ``ANSWER``), in the order ``--answer`` lists them.

Adding a kind is a module and a line in :data:`BUILTIN_MODULES`; :data:`AnswerName` (the ``Literal`` of
``PromptConfig.answer`` and of the ``--answer`` options) follows. What the kind changes in prompts, samples
and scores is still written where those are made (``prompts/templates.py``, ``tasks/builders.py``,
``ranking/ranker.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ulmrec_align.declarations import declared
from ulmrec_align.prompts.answers.base import Answer
from ulmrec_eval.runtime.errors import InputError

BUILTIN_MODULES = (
    "ulmrec_align.prompts.answers.letter",
    "ulmrec_align.prompts.answers.title",
    "ulmrec_align.prompts.answers.relevance",
)


#: Every answer kind by name.
ANSWERS: dict[str, Answer] = declared(BUILTIN_MODULES, "ANSWER", Answer)
ANSWER_NAMES = tuple(ANSWERS)
if TYPE_CHECKING:
    AnswerName = str
else:
    AnswerName = Literal[ANSWER_NAMES]


def get_answer(name: str) -> Answer:
    """The answer kind ``name``; an unknown one lists the registered kinds."""
    if name not in ANSWERS:
        raise InputError(f"unknown answer kind {name!r} (registered: {', '.join(ANSWERS)})")
    return ANSWERS[name]
