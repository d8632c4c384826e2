"""Alpaca-style prompt text (as in the ULMRec/LlamaRec releases) with the user code's character spans.

A prompt reads::

    ### Instruction:
    <instruction>

    ### Input:
    User Index: <a_71><b_254><c_87><d_24>
    <input lines>

    ### Response:

and the response follows it. Text written by users (titles, reviews, preferences) is data: only the spans
recorded here are user-code tokens, so a review that contains ``<a_12>`` stays ordinary text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ulmrec_align.prompts.letters import letter

Span = tuple[int, int]
RESPONSE_HEADER = "### Response:\n"


@dataclass
class SpannedText:
    """Text assembled piece by piece; ``spans`` are the ``[start, end)`` offsets of user-code pieces."""

    text: str = ""
    spans: list[Span] = field(default_factory=list)

    def add(self, piece: str) -> SpannedText:
        self.text += piece
        return self

    def add_code(self, code: str) -> SpannedText:
        start = len(self.text)
        self.text += code
        self.spans.append((start, len(self.text)))
        return self


def numbered(titles: Sequence[str]) -> str:
    """History as ``(1) title (2) title ...``, oldest first."""
    return " ".join(f"({i}) {title}" for i, title in enumerate(titles, start=1))


def lettered(titles: Sequence[str]) -> str:
    """Candidates as ``(A) title (B) title ...``."""
    return " ".join(f"({letter(i)}) {title}" for i, title in enumerate(titles))


def alpaca_prompt(instruction: str, input_lines: Sequence[str], *, user_code: str | None) -> SpannedText:
    """The prompt up to and including ``### Response:\\n``; ``user_code`` adds the ``User Index:`` line."""
    out = SpannedText().add(f"### Instruction:\n{instruction}\n\n### Input:\n")
    if user_code is not None:
        out.add("User Index: ").add_code(user_code).add("\n")
    for line in input_lines:
        out.add(f"{line}\n")
    return out.add(f"\n{RESPONSE_HEADER}")
