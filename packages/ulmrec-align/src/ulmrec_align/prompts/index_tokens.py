"""User-code tokens: ``plain`` (the code as ordinary text, as the release does) or ``added`` (one new
token per (level, code) such as ``<a_71>``, added to the tokenizer as special tokens so that only the
spans the prompt builder marks become them — text that merely looks like a code is split as ordinary
text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

IndexTokens = Literal["plain", "added"]


def code_vocabulary(token_format: Sequence[str], codebook_sizes: Sequence[int]) -> list[str]:
    """Every code token: ``<a_0>`` … ``<a_{K_1-1}>``, ``<b_0>`` …, level by level.

    >>> code_vocabulary(["<a_{}>", "<b_{}>"], [2, 3])
    ['<a_0>', '<a_1>', '<b_0>', '<b_1>', '<b_2>']
    """
    if len(token_format) < len(codebook_sizes):
        raise ValueError(f"{len(token_format)} token templates for {len(codebook_sizes)} levels")
    return [template.format(code) for template, size in zip(token_format, codebook_sizes, strict=False)
            for code in range(size)]


def add_index_tokens(tokenizer: Any, token_format: Sequence[str], codebook_sizes: Sequence[int]) -> list[int]:
    """Add the code tokens to ``tokenizer`` (special, so plain text never matches them); returns their ids.

    Idempotent: tokens already present keep their ids. The model's embedding matrix must then be resized to
    ``len(tokenizer)``.
    """
    from tokenizers import AddedToken

    tokens = code_vocabulary(token_format, codebook_sizes)
    vocab = tokenizer.get_vocab()
    missing = [AddedToken(t, special=True, normalized=False, single_word=False, lstrip=False, rstrip=False)
               for t in tokens if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing},
                                     replace_extra_special_tokens=False)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    return [int(i) for i in ids]
