"""Samples → token ids, shared by training and ranking.

``prompt ids = special prefix (BOS where the tokenizer adds one) + prompt pieces`` and
``response ids = response pieces + EOS``; the model is trained to emit ``response ids`` after ``prompt ids``
(loss on the response only). The ranker feeds ``prompt ids`` and reads, at the last position, the logit of
the *first response id* of each candidate letter — :func:`letter_token_ids` derives those ids from
:func:`encode_response`, the very function that builds the training targets (never from ``tokenizer("A")``
inside some other context).

Text is data: every piece is tokenized with special tokens split, so a review or title that contains
``<|endoftext|>``, ``<|im_start|>`` or a code such as ``<a_12>`` is ordinary text, in every mode, in training
and ranking alike (the only special ids are the special prefix and the response's EOS). With
``index_tokens="added"``, the spans marked as user codes become the added code tokens (looked up by name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.prompts.letters import LETTERS
from ulmrec_align.prompts.render import Span
from ulmrec_align.prompts.templates import RELEVANCE_ANSWERS, RELEVANCE_CUE, relevance_continuation

IGNORE_INDEX = -100
_CODE_TOKEN = r"<[^<>]+>"


class PromptEncodingError(ValueError):
    """The tokenizer cannot represent what the prompts need (e.g. two letters share their first token)."""

    user_error = True


@dataclass(frozen=True)
class EncodedSample:
    """``input_ids = prompt + response`` and ``labels`` (IGNORE_INDEX on the prompt)."""

    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    cut: bool = False  # the prompt was cut from the left to fit max_length


def special_prefix(tokenizer: Any) -> list[int]:
    """Ids the tokenizer puts before any text (BOS for Llama-style tokenizers, nothing for GPT-2-style)."""
    ids = tokenizer("", add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id
    return [int(i) for i in ids if i != eos]


def _code_ids(tokenizer: Any, code: str) -> list[int]:
    import re

    tokens = re.findall(_CODE_TOKEN, code)
    if "".join(tokens) != code:
        raise PromptEncodingError(f"{code!r} is not a sequence of code tokens")
    ids = tokenizer.convert_tokens_to_ids(tokens)
    unk = tokenizer.unk_token_id
    for token, token_id in zip(tokens, ids, strict=True):
        if token_id is None or (unk is not None and token_id == unk and token != tokenizer.unk_token):
            raise PromptEncodingError(f"code token {token!r} is not in the tokenizer; the samples were built "
                                      "with --index-tokens added, so load the tokenizer saved by training")
    return [int(i) for i in ids]


def encode_pieces(tokenizer: Any, text: str, spans: Sequence[Span] = (), *,
                  index_tokens: IndexTokens = "plain") -> list[int]:
    """Ids of ``text``, no special token coming from it; in ``added`` mode ``spans`` become code tokens."""
    if index_tokens == "plain":
        return _plain(tokenizer, text)
    ids: list[int] = []
    position = 0
    for start, end in sorted(spans):
        ids += _plain(tokenizer, text[position:start])
        ids += _code_ids(tokenizer, text[start:end])
        position = end
    return ids + _plain(tokenizer, text[position:])


def _plain(tokenizer: Any, text: str) -> list[int]:
    if not text:
        return []
    out = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [int(i) for i in out]


def encode_prompt(tokenizer: Any, prompt: str, spans: Sequence[Span] = (), *,
                  index_tokens: IndexTokens = "plain") -> list[int]:
    """The ids the model reads: special prefix + prompt pieces."""
    return special_prefix(tokenizer) + encode_pieces(tokenizer, prompt, spans, index_tokens=index_tokens)


def encode_response(tokenizer: Any, response: str, spans: Sequence[Span] = (), *,
                    index_tokens: IndexTokens = "plain") -> list[int]:
    """The ids the model is trained to emit: response pieces + EOS."""
    if tokenizer.eos_token_id is None:
        raise PromptEncodingError("the tokenizer has no EOS token")
    pieces = encode_pieces(tokenizer, response, spans, index_tokens=index_tokens)
    return [*pieces, int(tokenizer.eos_token_id)]


def encode_sample(tokenizer: Any, sample: Any, *, index_tokens: IndexTokens = "plain",
                  max_length: int | None = None) -> EncodedSample:
    """Encode an :class:`~ulmrec_align.tasks.schema.AlignmentSample` for training.

    ``max_length`` cuts the prompt from the left (keeping the prefix) when prompt + response exceed it.
    """
    prompt = encode_prompt(tokenizer, sample.prompt, sample.prompt_code_spans, index_tokens=index_tokens)
    response = encode_response(tokenizer, sample.response, sample.response_code_spans,
                               index_tokens=index_tokens)
    cut = max_length is not None and len(prompt) + len(response) > max_length
    if max_length is not None and cut:
        prefix = special_prefix(tokenizer)
        keep = max(max_length - len(response) - len(prefix), 0)
        prompt = prefix + prompt[len(prompt) - keep:] if keep else prefix
    return EncodedSample(input_ids=prompt + response,
                         labels=[IGNORE_INDEX] * len(prompt) + response,
                         prompt_length=len(prompt), cut=cut)


def relevance_token_ids(tokenizer: Any) -> tuple[int, int]:
    """``(yes_id, no_id)``: the first id of " Yes" and of " No" as they follow the relevance cue that ends the
    continuation (:func:`ulmrec_align.prompts.templates.relevance_continuation`), derived from encoding the
    cue with and without each answer. Raises :class:`PromptEncodingError` when the tokenizer merges the
    answer into the cue or gives both answers one first id."""
    cue = encode_pieces(tokenizer, RELEVANCE_CUE)
    firsts = []
    for answer in RELEVANCE_ANSWERS:
        ids = encode_pieces(tokenizer, f"{RELEVANCE_CUE} {answer}")
        if ids[: len(cue)] != cue or len(ids) == len(cue):
            raise PromptEncodingError(f"the tokenizer merges the answer {answer!r} into the cue")
        firsts.append(ids[len(cue)])
    if firsts[0] == firsts[1]:
        raise PromptEncodingError("the relevance answers start with the same token in this tokenizer")
    return firsts[0], firsts[1]


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    """Ids of a continuation read after an encoded prompt (no special prefix, no EOS)."""
    ids = encode_pieces(tokenizer, text)
    if not ids:
        raise PromptEncodingError("an empty continuation")
    return ids


def candidate_ids(tokenizer: Any, titles: Sequence[str], answer: str) -> list[list[int]]:
    """Each candidate's ids as training and ranking read them after the prompt: its answer ids (title + EOS,
    :func:`encode_response`) for title answers, its continuation (title + the yes/no cue,
    :func:`ulmrec_align.prompts.templates.relevance_continuation`) for relevance answers."""
    if answer == "relevance":
        return [encode_continuation(tokenizer, relevance_continuation(t)) for t in titles]
    return [encode_response(tokenizer, t) for t in titles]


def letter_token_ids(tokenizer: Any, n_letters: int = len(LETTERS)) -> list[int]:
    """For each letter A, B, …: the first id of its training target (:func:`encode_response` of the letter).

    Raises :class:`PromptEncodingError` when two letters share that id (the ranker could not tell them apart).
    """
    ids = [encode_response(tokenizer, LETTERS[i])[0] for i in range(n_letters)]
    if len(set(ids)) != len(ids):
        raise PromptEncodingError("two candidate letters start with the same token in this tokenizer; "
                                  "the logits ranker needs one distinct first token per letter")
    return ids
