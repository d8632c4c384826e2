"""Rank the retriever's candidates of a split with an LLM: ``logits`` (one forward pass per prompt, the
default) or ``generate`` (greedy generation of the whole ranking, parsed; the generative baseline).

Each output row is an ``ulmrec-eval`` prediction: ``candidates`` in retriever order (cut to the prompt's
``n_candidates``) with one score each. ``logits``: the letter logits. ``generate``: ``n - position`` for the
letters the model listed, in its order, and 0 for letters it did not list (ranked last, tied; ties count
pessimistically in ``ulmrec-eval``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder, Rendered
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.encoding import encode_prompt, letter_token_ids
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.prompts.letters import LETTERS
from ulmrec_align.prompts.templates import TEMPLATES
from ulmrec_align.ranking.scorer import last_logits, left_pad, model_device
from ulmrec_align.retrieval.candidates import CandidateRow

Method = Literal["logits", "generate"]
RANK_SCHEMA_VERSION = 1


class RankRow(BaseModel):
    """One ranked user (an ``ulmrec-eval`` ``RankedPrediction`` with provenance)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = RANK_SCHEMA_VERSION
    user_id: int
    raw_user_id: str
    split: Literal["valid", "test"]
    target: int
    candidates: list[int] = Field(description="Dense item ids in letter order (retriever order).")
    scores: list[float] = Field(description="One score per candidate, higher is better.")
    source: str = Field(description="'<method>:<model name>'.")
    history_length: int
    parsed: bool | None = Field(default=None, description="generate: every candidate's letter was listed.")


@dataclass
class RankingModel:
    """A causal LM ready to rank: model, tokenizer and the prompt settings it was tuned with."""

    model: Any
    tokenizer: Any
    prompt: PromptConfig
    index_tokens: IndexTokens
    name: str


@dataclass(frozen=True)
class RankingPrompt:
    row: CandidateRow
    candidates: list[int]
    rendered: Rendered


def ranking_prompts(dataset: PreparedDataset, rows: Sequence[CandidateRow], builder: PromptBuilder,
                    codes: dict[int, str] | None, *, instruction: str = TEMPLATES["next_item"][0],
                    ) -> list[RankingPrompt]:
    """The ``next_item`` prompt (template 0) of each candidates row: the split's input history, the first
    ``n_candidates`` candidates in retriever order, the user's code when ``codes`` is given."""
    out = []
    for row in rows:
        s = dataset.splits[row.user_id]
        history = s.valid_input if row.split == "valid" else s.test_input
        pool = list(row.candidates[: builder.config.n_candidates])
        rendered = builder.render(instruction, user_code=None if codes is None else codes[row.user_id],
                                  history=list(history), candidates=pool)
        out.append(RankingPrompt(row=row, candidates=pool, rendered=rendered))
    return out


_LETTER = re.compile(r"\b([A-Z])\b")


def parse_ranking(text: str, n: int) -> list[int]:
    """Candidate positions in the order a generated ranking lists their letters (repeats and letters past
    ``n`` ignored).

    >>> parse_ranking("C, A, (B) and C again, Z", 3)
    [2, 0, 1]
    """
    seen: list[int] = []
    for match in _LETTER.finditer(text):
        position = LETTERS.index(match.group(1))
        if position < n and position not in seen:
            seen.append(position)
    return seen


def rank_prompts(ranker: RankingModel, prompts: Sequence[RankingPrompt], *, method: Method = "logits",
                 batch_size: int = 8, progress: Callable[[int], None] | None = None) -> list[RankRow]:
    """Score every prompt with ``method``; rows in input order."""
    tok = ranker.tokenizer
    encoded = [encode_prompt(tok, p.rendered.text, p.rendered.spans, index_tokens=ranker.index_tokens)
               for p in prompts]
    n_max = max((len(p.candidates) for p in prompts), default=0)
    parsed_flags: list[bool | None] = [None] * len(prompts)
    if method == "logits":
        letters = letter_token_ids(tok, max(n_max, 1))
        scores = last_logits(ranker.model, encoded, pad_id=int(tok.pad_token_id or 0), batch_size=batch_size,
                             columns=letters, progress=progress)
        per_row = [scores[i, : len(p.candidates)].astype(float).tolist() for i, p in enumerate(prompts)]
    else:
        texts = generate_texts(ranker, encoded, max_new_tokens=2 * n_max + 2, batch_size=batch_size,
                               progress=progress)
        per_row = []
        for i, (p, text) in enumerate(zip(prompts, texts, strict=True)):
            order = parse_ranking(text, len(p.candidates))
            values = np.zeros(len(p.candidates))
            for place, position in enumerate(order):
                values[position] = len(p.candidates) - place
            per_row.append(values.tolist())
            parsed_flags[i] = len(order) == len(p.candidates)
    return [RankRow(user_id=p.row.user_id, raw_user_id=p.row.raw_user_id, split=p.row.split,
                    target=p.row.target, candidates=p.candidates, scores=per_row[i],
                    source=f"{method}:{ranker.name}", history_length=p.row.history_length,
                    parsed=parsed_flags[i])
            for i, p in enumerate(prompts)]


def generate_texts(ranker: RankingModel, encoded: Sequence[Sequence[int]], *, max_new_tokens: int,
                   batch_size: int, progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy continuations of each prompt (decoded, special tokens dropped), in input order."""
    import torch

    tok, model = ranker.tokenizer, ranker.model
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    out = [""] * len(encoded)
    device = model_device(model)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids, mask, _ = left_pad([encoded[i] for i in rows], int(tok.pad_token_id or 0))
            generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                       max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                       pad_token_id=int(tok.pad_token_id or 0),
                                       eos_token_id=tok.eos_token_id)
            for row, sequence in zip(rows, generated[:, ids.shape[1]:], strict=True):
                out[row] = str(tok.decode(sequence, skip_special_tokens=True))
            if progress is not None:
                progress(len(rows))
    return out
