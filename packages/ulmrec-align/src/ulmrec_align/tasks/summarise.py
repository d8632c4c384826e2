"""Preference texts for users whose data has none: a pluggable summariser of their training reviews.

The default is extractive: the sentences of the user's reviews that share the most words with the rest of
their reviews (a centroid score: ``score(s) = Σ_w∈s tf(w) / |s|`` over content words), best first, up to
``max_sentences`` distinct ones (a sentence repeated across reviews counts once), kept in their original
order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from ulmrec_align.data.prepared import PreparedDataset

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z][a-z'-]+")
_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "had", "has", "have", "i",
    "i'm", "in", "is", "it", "it's", "its", "my", "of", "on", "or", "so", "that", "the", "this", "to",
    "too", "was", "were", "with", "you", "your", "very", "just", "not", "no", "they", "them", "than",
    "then", "all", "also", "one", "get", "got", "will", "would", "can", "could", "really", "much",
    "more", "most",
))


class Summariser(Protocol):
    """Turns a user's texts (oldest first) into one short preference text ('' when there is nothing)."""

    def summarise(self, texts: Sequence[str]) -> str:
        ...


class ExtractiveSummariser:
    """The most central sentences of the texts (see the module docstring)."""

    def __init__(self, *, max_sentences: int = 2) -> None:
        self.max_sentences = max_sentences

    def summarise(self, texts: Sequence[str]) -> str:
        sentences = [s.strip() for text in texts for s in _SENTENCE.split(text) if s.strip()]
        if not sentences:
            return ""
        words = [[w for w in _WORD.findall(s.lower()) if w not in _STOP] for s in sentences]
        tf = Counter(w for ws in words for w in ws)
        scores = [sum(tf[w] for w in ws) / (len(ws) + 1) for ws in words]
        best: list[int] = []
        chosen: set[str] = set()
        for i in sorted(range(len(sentences)), key=lambda i: (-scores[i], i)):
            key = " ".join(sentences[i].lower().split())
            if key not in chosen:                     # a sentence repeated across reviews is said once
                chosen.add(key)
                best.append(i)
            if len(best) == self.max_sentences:
                break
        return " ".join(sentences[i] for i in sorted(best))


def training_preference(dataset: PreparedDataset, user: int, summariser: Summariser) -> str | None:
    """User ``user``'s preference text: the data's own, else ``summariser`` over the reviews (or summaries)
    of their *training* interactions only (no validation or test review leaks in), else their user texts."""
    record = dataset.users[user]
    if record.preference:
        return record.preference
    seq = dataset.sequences[user]
    n_train = len(dataset.splits[user].train)
    reviews = [t for t in (seq.reviews or [])[:n_train] if t]
    summaries = [t for t in (seq.summaries or [])[:n_train] if t]
    return summariser.summarise(reviews or summaries or list(record.texts)) or None
