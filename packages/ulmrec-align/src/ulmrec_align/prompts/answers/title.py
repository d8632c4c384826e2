"""``title``: no candidate list; the answer is the target's title, and candidates are ranked by likelihood."""

from __future__ import annotations

from ulmrec_align.prompts.answers.base import Answer

ANSWER = Answer(
    name="title",
    summary="no candidate list; the target's title, ranked by title likelihood",
    description="the prompt has no candidate list and the answer is the target's (cut) title; a candidate's "
    "score is the log-likelihood of its title + EOS after the prompt (small models learn this far faster "
    "than binding letters to candidates; docs/align.md).",
    per_candidate=True,
    scored_by="title likelihood")
