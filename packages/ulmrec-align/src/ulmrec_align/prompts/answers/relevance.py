"""``relevance``: each candidate is read after the user's prompt and scored by the log-odds of ' Yes'."""

from __future__ import annotations

from ulmrec_align.prompts.answers.base import Answer

ANSWER = Answer(
    name="relevance",
    summary="each candidate read after the prompt and scored by the log-odds of ' Yes'; train with "
    "--loss relevance",
    description="the prompt has no candidate list; each candidate is read after the user's prompt "
    "as a short continuation (its title and a yes/no question), and its score is the log-odds of ' Yes' "
    "against ' No' there: one number per candidate, trained listwise with --loss relevance.",
    per_candidate=True,
    scored_by="relevance log-odds",
    negatives="retriever",
    losses=("relevance",))
