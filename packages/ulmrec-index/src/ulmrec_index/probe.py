"""How much of a known user label the codes carry: a leave-one-out probe per code prefix.

For prefix length ``ℓ`` (1 … levels), user ``u`` is predicted the most common label among the *other* users
whose code starts with the same ``ℓ`` codes (ties: the label seen first in sorted order); a user alone in
their prefix is predicted the most common label among all other users. ``accuracy(ℓ)`` is the share
predicted right; ``majority`` is what always answering the most common label scores. Codes that carry the
label give ``accuracy(1) ≫ majority``; codes that carry none give about ``majority`` (or less).

Labels: a JSON-lines file of ``{"user_id": ..., "label": ...}`` (``ulmrec data synthetic`` writes the hidden
trait of every user as ``traits_<Category>.jsonl``). Users without a label, or without a code, are left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ulmrec_eval.runtime.errors import InputError


class LabelRecord(BaseModel):
    """One line of a labels file."""

    model_config = ConfigDict(extra="ignore")

    user_id: str
    label: str

    @field_validator("user_id", mode="before")
    @classmethod
    def _int_id(cls, value: object) -> object:   # an int id is its decimal string, as `index build` has it
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PrefixProbe(BaseModel):
    """The probe at one prefix length."""

    model_config = ConfigDict(extra="forbid")

    prefix: int = Field(ge=1, description="Codes compared (the first ``prefix`` levels).")
    accuracy: float = Field(description="Leave-one-out share of users whose label the prefix predicts.")
    groups: int = Field(description="Distinct prefixes among the labelled users.")
    alone: int = Field(description="Users no other labelled user shares the prefix with.")


class ProbeReport(BaseModel):
    """``ulmrec index probe --json``."""

    model_config = ConfigDict(extra="forbid")

    users: int = Field(description="Users with both a code and a label.")
    labels: dict[str, int] = Field(description="label -> users.")
    majority: float = Field(description="Share of the most common label (the trivial predictor).")
    prefixes: list[PrefixProbe]


def read_labels(path: str | Path) -> dict[str, str]:
    """``user_id -> label`` of a JSON-lines labels file; a malformed line names the file and line."""
    from ulmrec_eval.runtime.io import iter_jsonl_models

    file = Path(path)
    if not file.is_file():
        raise InputError("no such labels file", path=file)
    out: dict[str, str] = {}
    for number, record in iter_jsonl_models(file, LabelRecord):
        if record.user_id in out and out[record.user_id] != record.label:
            raise InputError(f"user {record.user_id!r} has two labels", path=file, line=number)
        out[record.user_id] = record.label
    return out


def _most_common(counts: Counter[str], without: str) -> str | None:
    """The most common label once one ``without`` is taken away (ties: the smallest label)."""
    best: tuple[int, str] | None = None
    for label, n in counts.items():
        n -= int(label == without)
        if n > 0 and (best is None or (-n, label) < (-best[0], best[1])):
            best = (n, label)
    return None if best is None else best[1]


def probe_codes(codes: Mapping[str, Sequence[int]], labels: Mapping[str, str]) -> ProbeReport:
    """:class:`ProbeReport` of ``codes`` against ``labels`` (see the module docstring).

    >>> codes = {"u1": [0, 5], "u2": [0, 6], "u3": [1, 7], "u4": [1, 8]}
    >>> report = probe_codes(codes, {"u1": "x", "u2": "x", "u3": "y", "u4": "y"})
    >>> [(p.prefix, p.accuracy) for p in report.prefixes], report.majority
    ([(1, 1.0), (2, 0.0)], 0.5)
    """
    users = sorted(u for u in codes if u in labels)
    if len(users) < 2:
        raise InputError(f"the probe needs at least 2 users with both a code and a label, found {len(users)}")
    overall = Counter(labels[u] for u in users)
    levels = min(len(codes[u]) for u in users)
    prefixes = []
    for depth in range(1, levels + 1):
        groups: dict[tuple[int, ...], Counter[str]] = {}
        for u in users:
            groups.setdefault(tuple(codes[u][:depth]), Counter())[labels[u]] += 1
        right = alone = 0
        for u in users:
            group = groups[tuple(codes[u][:depth])]
            if sum(group.values()) == 1:
                alone += 1
                guess = _most_common(overall, labels[u])
            else:
                guess = _most_common(group, labels[u])
            right += int(guess == labels[u])
        prefixes.append(PrefixProbe(prefix=depth, accuracy=right / len(users), groups=len(groups),
                                    alone=alone))
    return ProbeReport(users=len(users), labels=dict(sorted(overall.items())),
                       majority=max(overall.values()) / len(users), prefixes=prefixes)
