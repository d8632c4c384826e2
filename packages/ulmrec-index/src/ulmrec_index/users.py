"""The input schema (:class:`UserText`) and a strict JSON-lines reader for it.

Rules (documented in docs/index.md and tested):

* ``texts`` may be empty: the user is indexed from the user-ID path alone (counted in the report);
* empty or whitespace-only strings are dropped (so ``["", " "]`` counts as an empty list);
* a duplicated ``user_id`` is an error naming the file and both lines;
* a line that is not valid UTF-8 or not valid JSON is an error naming the file and line;
* over-long texts are truncated by the encoder to its ``max_seq_length`` word pieces (counted in the report).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import validation_message


class UserText(BaseModel):
    """One user to index: an id (any string) and the texts describing them (reviews or a preference
    summary)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, description="The user's id, unique in an index (an int is stored as "
                                                   "its decimal string).")
    texts: list[str] = Field(default_factory=list, description="Texts describing the user; may be empty.")

    @field_validator("user_id", mode="before")
    @classmethod
    def _int_id(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("texts")
    @classmethod
    def _drop_blank(cls, texts: list[str]) -> list[str]:
        return [text for text in texts if text.strip()]


def iter_user_texts(path: str | Path) -> Iterator[tuple[int, UserText]]:
    """Yield ``(line_number, UserText)`` from a JSON-lines file; bad lines raise :class:`InputError`
    (file:line)."""
    file = Path(path)
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not valid UTF-8 (byte {exc.start})", path=file, line=number) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON ({exc.msg})", path=file, line=number) from None
            try:
                yield number, UserText.model_validate(obj)
            except ValidationError as exc:
                raise InputError(validation_message(UserText, exc), path=file, line=number) from None


def read_user_texts(path: str | Path) -> list[UserText]:
    """Read every user of a JSON-lines file, rejecting duplicated ids with both line numbers."""
    seen: dict[str, int] = {}
    users: list[UserText] = []
    for number, user in iter_user_texts(path):
        if user.user_id in seen:
            raise InputError(
                f"duplicated user_id {user.user_id!r} (first seen on line {seen[user.user_id]})",
                path=path,
                line=number,
            )
        seen[user.user_id] = number
        users.append(user)
    if not users:
        raise InputError("no users in file", path=path)
    return users


def check_unique_ids(users: Iterable[UserText]) -> list[UserText]:
    """Return ``users`` as a list, raising :class:`InputError` on a duplicated id (position given as 'item
    N')."""
    seen: dict[str, int] = {}
    out: list[UserText] = []
    for position, user in enumerate(users):
        if user.user_id in seen:
            raise InputError(
                f"duplicated user_id {user.user_id!r} (items {seen[user.user_id]} and {position})"
            )
        seen[user.user_id] = position
        out.append(user)
    if not out:
        raise InputError("no users to index")
    return out
