"""Candidate letters: position ``i`` of a prompt's candidate list is shown as ``(A)``, ``(B)``, ...

>>> letter(0), letter(19)
('A', 'T')
>>> letter_index("C")
2
"""

from __future__ import annotations

import string

#: Letters available for one prompt; larger pools are ranked in chunks (see ``ranking.ranker``).
LETTERS = string.ascii_uppercase
MAX_LETTERS = len(LETTERS)


def letter(position: int) -> str:
    """The letter of candidate ``position`` (0-based)."""
    if not 0 <= position < MAX_LETTERS:
        raise ValueError(f"candidate position must be in [0, {MAX_LETTERS}), got {position}")
    return LETTERS[position]


def letter_index(text: str) -> int:
    """The 0-based position of letter ``text``."""
    if len(text) != 1 or text not in LETTERS:
        raise ValueError(f"not a candidate letter: {text!r}")
    return LETTERS.index(text)
