"""``letter`` (the paper, LlamaRec): the candidates are listed as (A), (B), ... and the answer is a letter."""

from __future__ import annotations

from ulmrec_align.prompts.answers.base import Answer

ANSWER = Answer(
    name="letter",
    summary="lettered candidates, the paper",
    description="the prompt lists the candidates as (A), (B), ... and the answer is the target's letter; a "
    "candidate's score is its letter's logit (the paper, LlamaRec).")
