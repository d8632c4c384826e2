"""What an answer kind declares: how ``next_item`` is answered, and what the commands read from that.

A kind is one module under :mod:`ulmrec_align.prompts.answers` with a module-level ``ANSWER``; the registry
lists the module. Declarations only (no model, no torch): the config models take their choices from them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One answer kind of ``next_item``."""

    #: The lowercase name (``--answer NAME``, ``PromptConfig.answer``).
    name: str
    #: One line for ``align build --answer``'s help.
    summary: str
    #: What ``PromptConfig.answer``'s description (and so the docs) says of it.
    description: str
    #: The prompt lists no candidates and each candidate is scored on its own (training samples carry their
    #: pool as ``choices``): ``align rank --method logits --permutations 1`` only.
    per_candidate: bool = False
    #: What ``align rank`` says it ranked by (None: the ``--method``).
    scored_by: str | None = None
    #: ``align build --negatives`` when none is given.
    negatives: str = "random"
    #: The only ``--loss`` values that train it (None: any loss whose ``answers`` admit it).
    losses: tuple[str, ...] | None = None
