"""Rank the retriever's candidates of a split with an LLM: ``logits`` (one forward pass per prompt, the
default) or ``generate`` (greedy generation of the whole ranking, parsed; the generative baseline).

Each output row is an ``ulmrec-eval`` prediction: ``candidates`` in retriever order (cut to the prompt's
``n_candidates``) with one score each. ``logits``: the letter logits. ``generate``: ``n - position`` for the
letters the model listed, in its order, and 0 for letters it did not list (ranked last, tied; ties count
pessimistically in ``ulmrec-eval``).

**Title answers** (a model tuned with ``answer = "title"``): the prompt lists no candidates; each candidate's
score is the log-likelihood of its cut title + EOS after the prompt
(:func:`ulmrec_align.ranking.scorer.choice_log_likelihoods`, the prompt read once for all its
candidates). No letters, so no letter orders. Its **title prior** plays the letter prior's part: short or
common titles are likely after any prompt, so ``calibrate`` scores ``log p(t | prompt) − log p(t | ∅)``,
where ``∅`` is the same instruction with an empty input (content-free; PMI scoring, Holtzman et al. 2021),
one pass per distinct title. ``source`` reads ``titles:<model>`` or ``titles+pmi:<model>``.

**Relevance answers** (a model tuned with ``answer = "relevance"``): the prompt lists no candidates; each
candidate is read after the (cached) prompt as its continuation (title + a yes/no question) and scored by
the log-odds of " Yes" against " No" there (:func:`ulmrec_align.ranking.scorer.relevance_scores`). No
calibration applies; ``source`` reads ``relevance:<model>``.

**Letter prior** (``calibrate``, the default when the tuned model has one): each prompt's letter logits become
log-probabilities over its ``n`` letters and the model's content-free preference for each letter
(estimated on shuffled-letter validation prompts at training time,
:func:`ulmrec_align.tuning.validation.letter_prior`) is subtracted: ``s_j = log softmax(z)_j − prior_j``
(PriDe-style debiasing, one pass, no labels).

**Letter orders** (``permutations = K > 1``): an LLM prefers some letters whatever they stand for (a tuned
model often picks ``A``, the retriever's top-1). Each user is then prompted with ``K`` orders of the same
candidates: the retriever's and ``K - 1`` cyclic shifts spread evenly (candidate ``i`` shown at letter
``(i + s_k) mod n``, ``s_k = round(k n / K)``), and a candidate's score is its mean letter log-probability
(log-softmax over the ``n`` letters) over the ``K`` prompts. With ``K = n`` every candidate is shown once at
every letter, so a bias that depends on the letter alone cancels exactly. It costs ``K`` forward passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder, Rendered
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.encoding import (
    candidate_ids,
    encode_prompt,
    encode_response,
    letter_token_ids,
    relevance_token_ids,
)
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.prompts.letters import LETTERS
from ulmrec_align.prompts.render import alpaca_prompt
from ulmrec_align.prompts.templates import next_item_templates, preference_line, prompt_instructions
from ulmrec_align.ranking.scorer import (
    choice_log_likelihoods,
    last_logits,
    left_pad,
    letter_log_probs,
    model_device,
    relevance_scores,
)
from ulmrec_align.retrieval.candidates import CandidateRow
from ulmrec_align.tasks.base import preference_text
from ulmrec_align.tasks.summarise import ExtractiveSummariser, Summariser

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
    retrieved_n: int | None = Field(default=None, ge=1,
                                    description="The retriever's top-N these candidates are (subset's N).")
    fusion_weight: float | None = Field(default=None, ge=0,
                                        description="W of z(llm) + W·z(retriever) when fused with it.")
    llm_scores: list[float] | None = Field(default=None, description="When fused: the LLM's own scores "
                                           "(``scores`` before fusion), so the LLM alone can be evaluated.")
    cold_start: bool | None = Field(default=None, description="The user was held out of the model's "
                                    "training (align build --cold-share); None: the model held none out.")


@dataclass
class RankingModel:
    """A causal LM ready to rank: model, tokenizer and the prompt settings it was tuned with."""

    model: Any
    tokenizer: Any
    prompt: PromptConfig
    index_tokens: IndexTokens
    name: str
    letter_prior: list[float] | None = None
    index_sha256: str | None = None
    tuned: bool = False
    cold_start: tuple[float, int] | None = None   # (share, seed) of the users held out of its training
    fusion: tuple[float, int] | None = None   # (W, validation users) chosen while tuning (relevance answers)

    def is_cold(self, raw_user_id: str) -> bool | None:
        """Whether the user was held out of this model's training; None when it held none out."""
        if self.cold_start is None:
            return None
        from ulmrec_eval.cold_start import is_cold

        return is_cold(raw_user_id, self.cold_start[0], seed=self.cold_start[1])


@dataclass(frozen=True)
class RankingPrompt:
    """One prompt of a candidates row: ``candidates`` in retriever order (the output order); letter ``j``
    shows ``candidates[shown[j]]`` (``shown`` None: the retriever's order)."""

    row: CandidateRow
    candidates: list[int]
    rendered: Rendered
    shown: tuple[int, ...] | None = None
    choices: list[str] | None = None   # title / relevance answers: each candidate's title (candidates order)


def letter_orders(n: int, permutations: int) -> list[tuple[int, ...]]:
    """``permutations`` orders of ``n`` candidates: ``order[j]`` = the candidate shown at letter ``j``. The
    first is the identity, the others cyclic shifts by ``round(k n / K)`` (distinct while ``K <= n``).

    >>> letter_orders(4, 2)
    [(0, 1, 2, 3), (2, 3, 0, 1)]
    """
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    shifts = sorted({round(k * n / permutations) % max(n, 1) for k in range(permutations)})
    return [tuple((j - shift) % n for j in range(n)) for shift in shifts]


def user_lines(dataset: PreparedDataset, user: int, builder: PromptBuilder,
               summariser: Summariser) -> list[str]:
    """The lines that describe ``user`` in words before the history, exactly as ``align build`` writes them
    (:meth:`ulmrec_align.tasks.base.BuildContext.user_lines`): the preference line with ``user_text``."""
    text = preference_text(dataset, user, builder, summariser) if builder.config.user_text else None
    return [preference_line(text)] if text else []


def ranking_prompts(dataset: PreparedDataset, rows: Sequence[CandidateRow], builder: PromptBuilder,
                    codes: dict[int, str] | None, *, instruction: str | None = None,
                    permutations: int = 1) -> list[RankingPrompt]:
    """The ``next_item`` prompt (template 0) of each candidates row: the split's input history, the first
    ``n_candidates`` candidates in retriever order, the user's code when ``codes`` is given. With
    ``permutations = K`` each row gets ``K`` consecutive prompts, one per :func:`letter_orders` order.
    With title answers (``builder.config.answer``) each row gets one prompt without the candidates, and
    their titles as ``choices``."""
    answer = builder.config.answer
    if answer in ("title", "relevance") and permutations > 1:
        raise ValueError(f"letter orders (permutations > 1) do not apply to {answer} answers")
    instruction = instruction if instruction is not None else prompt_instructions(builder.config)[0]
    summariser = ExtractiveSummariser()
    out = []
    for row in rows:
        s = dataset.splits[row.user_id]
        history = s.valid_input if row.split == "valid" else s.test_input
        pool = list(row.candidates[: builder.config.n_candidates])
        code = None if codes is None else codes[row.user_id]
        before = user_lines(dataset, row.user_id, builder, summariser)
        if answer in ("title", "relevance"):
            rendered = builder.render(instruction, user_code=code, history=list(history), before=before)
            out.append(RankingPrompt(row=row, candidates=pool, rendered=rendered,
                                     choices=[builder.title(i) for i in pool]))
            continue
        orders: list[tuple[int, ...] | None] = (
            [None] if permutations == 1 else list(letter_orders(len(pool), permutations)))
        for order in orders:
            shown = pool if order is None else [pool[i] for i in order]
            rendered = builder.render(instruction, user_code=code, history=list(history), candidates=shown,
                                      before=before)
            out.append(RankingPrompt(row=row, candidates=pool, rendered=rendered, shown=order))
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


def calibrate_letters(values: Sequence[float], prior: Sequence[float] | None) -> list[float]:
    """``log softmax(values) − prior[:n]`` (``prior`` None: ``values`` unchanged).

    >>> calibrate_letters([0.0, 0.0], [-0.1, -2.0])
    [-0.5931471805599453, 1.3068528194400546]
    """
    if prior is None:
        return list(values)
    v = letter_log_probs([values])[0]
    p = np.asarray(list(prior)[: len(v)], dtype=np.float64)
    if len(p) < len(v):
        p = np.concatenate([p, np.zeros(len(v) - len(p))])
    return (v - p).tolist()


def rank_prompts(ranker: RankingModel, prompts: Sequence[RankingPrompt], *, method: Method = "logits",
                 batch_size: int = 8, progress: Callable[[int], None] | None = None,
                 calibrate: bool = True) -> list[RankRow]:
    """Score every prompt with ``method``; rows in input order. ``calibrate`` (``logits`` only) removes the
    model's letter prior when it has one."""
    tok = ranker.tokenizer
    encoded = [encode_prompt(tok, p.rendered.text, p.rendered.spans, index_tokens=ranker.index_tokens)
               for p in prompts]
    n_max = max((len(p.candidates) for p in prompts), default=0)
    parsed_flags: list[bool | None] = [None] * len(prompts)
    titles = any(p.choices is not None for p in prompts)
    if titles and method != "logits":
        raise ValueError("a model answering by title or relevance scores each candidate (method 'logits')")
    relevance = titles and ranker.prompt.answer == "relevance"
    if relevance:
        yes_id, no_id = relevance_token_ids(tok)
        continuations = [candidate_ids(tok, p.choices or [], "relevance") for p in prompts]
        per_row = relevance_scores(ranker.model, encoded, continuations, yes_id=yes_id, no_id=no_id,
                                   pad_id=int(tok.pad_token_id or 0), batch_size=batch_size,
                                   progress=progress)
    elif titles:
        shown = [p.choices or [] for p in prompts]
        per_row = title_log_likelihoods(ranker.model, tok, encoded, shown, batch_size=batch_size,
                                        progress=progress)
        if calibrate:
            title_prior = title_priors(ranker.model, tok, [t for row in shown for t in row],
                                       batch_size=batch_size)
            per_row = without_prior(per_row, shown, title_prior)
    elif method == "logits":
        letters = letter_token_ids(tok, max(n_max, 1))
        scores = last_logits(ranker.model, encoded, pad_id=int(tok.pad_token_id or 0), batch_size=batch_size,
                             columns=letters, progress=progress)
        prior = ranker.letter_prior if calibrate else None
        per_row = [calibrate_letters(scores[i, : len(p.candidates)].astype(float).tolist(), prior)
                   for i, p in enumerate(prompts)]
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
    groups = _group_by_row(prompts)
    out = []
    for members in groups:
        first = prompts[members[0]]
        if relevance:
            merged, parsed = per_row[members[0]], None
            source = f"relevance:{ranker.name}"
        elif titles:
            merged, parsed = per_row[members[0]], None
            source = f"titles{'+pmi' if calibrate else ''}:{ranker.name}"
        elif len(members) == 1 and first.shown is None:
            merged, parsed = per_row[members[0]], parsed_flags[members[0]]
            calibrated = method == "logits" and calibrate and ranker.letter_prior is not None
            source = f"{method}{'+prior' if calibrated else ''}:{ranker.name}"
        else:
            merged = merge_letter_orders([per_row[i] for i in members],
                                         [prompts[i].shown for i in members], log_softmax=method == "logits")
            flags = [parsed_flags[i] for i in members]
            parsed = None if flags[0] is None else all(bool(f) for f in flags)
            source = f"{method}x{len(members)}:{ranker.name}"
        row = first.row
        out.append(RankRow(user_id=row.user_id, raw_user_id=row.raw_user_id, split=row.split,
                           target=row.target, candidates=first.candidates, scores=merged, source=source,
                           history_length=row.history_length, parsed=parsed,
                           retrieved_n=len(first.candidates), cold_start=ranker.is_cold(row.raw_user_id)))
    return out


def null_title_prompt(tokenizer: Any) -> list[int]:
    """The content-free title prompt: ``next_item``'s title instruction with an empty input."""
    empty = alpaca_prompt(next_item_templates("title")[0], [], user_code=None)
    return encode_prompt(tokenizer, empty.text, empty.spans)


def title_log_likelihoods(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]],
                          texts: Sequence[Sequence[str]], *, batch_size: int = 8,
                          progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """``out[i][j] = log p(texts[i][j] + EOS | prompts[i])`` (encoded prompts, title texts)."""
    answers = [[encode_response(tokenizer, t) for t in row] for row in texts]
    return choice_log_likelihoods(model, prompts, answers, pad_id=int(tokenizer.pad_token_id or 0),
                                  batch_size=batch_size, progress=progress)


def title_priors(model: Any, tokenizer: Any, texts: Sequence[str], *,
                 batch_size: int = 8) -> dict[str, float]:
    """``text -> log p(text + EOS | ∅)`` for each distinct text, ``∅`` = :func:`null_title_prompt`."""
    distinct = list(dict.fromkeys(texts))
    values = title_log_likelihoods(model, tokenizer, [null_title_prompt(tokenizer)], [distinct],
                                   batch_size=batch_size)[0]
    return dict(zip(distinct, values, strict=True))


def without_prior(values: Sequence[Sequence[float]], texts: Sequence[Sequence[str]],
                  prior: Mapping[str, float]) -> list[list[float]]:
    """``values[i][j] − prior[texts[i][j]]``: title log-likelihoods with the title prior removed (PMI)."""
    return [[v - prior[t] for v, t in zip(row, names, strict=True)]
            for row, names in zip(values, texts, strict=True)]


def _group_by_row(prompts: Sequence[RankingPrompt]) -> list[list[int]]:
    """Indices of consecutive prompts of the same candidates row (one group per row)."""
    groups: list[list[int]] = []
    for i, p in enumerate(prompts):
        if groups and p.shown is not None and prompts[groups[-1][0]].row is p.row:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def merge_letter_orders(letter_scores: Sequence[Sequence[float]], orders: Sequence[tuple[int, ...] | None], *,
                        log_softmax: bool) -> list[float]:
    """Per-candidate mean over prompts of the score at the letter it was shown at; with ``log_softmax`` each
    prompt's letter scores are first normalised to log-probabilities over its ``n`` letters.

    ``letter_scores[k][j]`` is prompt ``k``'s score of letter ``j``, which showed candidate ``orders[k][j]``.
    """
    n = len(letter_scores[0])
    total = np.zeros(n)
    for values, order in zip(letter_scores, orders, strict=True):
        v = np.asarray(values, dtype=np.float64)
        if log_softmax:
            v = v - np.logaddexp.reduce(v)
        shown = range(n) if order is None else order
        total[list(shown)] += v
    return (total / len(letter_scores)).tolist()


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
