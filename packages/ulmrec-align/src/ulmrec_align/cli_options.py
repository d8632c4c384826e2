"""What the ``align`` commands' options share with the config models they fill.

An option that fills a config field takes that field's ``Literal`` alias as its type (Typer offers and checks
the choices: ``--answer <letter|title|relevance>``) and the model's default as its own, so the CLI, the config
check of ``ulmrec run`` (which reads the options' types) and the docs agree by construction;
``tests/test_cli_choices.py`` fails when an option's bounds drift from the field's ``ge``/``gt``/``le``/
``lt``.
A bound that Typer cannot say (an open one: ``gt=0``) is left to the model, whose refusal
:func:`options_checked` turns into one line naming the option. :func:`index_arg` and :func:`progress_bar` are
what ``align build`` and ``align rank`` (``tasks/cli.py``, ``ranking/cli.py``) share besides.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ulmrec_eval.runtime.errors import InputError, error_text


def default_of(model: type[BaseModel], field: str) -> Any:
    """``model.field``'s default (factories called): an option's default is the library's."""
    return model.model_fields[field].get_default(call_default_factory=True)


@contextmanager
def options_checked(flags: Mapping[str, str] | None = None, *, prefix: str = "--") -> Iterator[None]:
    """Turn a config model's :class:`~pydantic.ValidationError` into one :class:`InputError` line that names
    the option: ``--lr: Input should be greater than 0 (got 0.0)``; an error of the whole model (a validator
    that relates two options) is its own sentence, with no option in front.

    The option of a field is ``flags[field]``, else ``prefix`` + the field with ``-`` for ``_``
    (``prefix="--lora-"`` for :class:`~ulmrec_align.tuning.config.LoraSettings`' ``alpha``)."""
    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        field = next((str(part) for part in reversed(first["loc"]) if isinstance(part, str)), "")
        if not field:
            raise InputError(error_text(first)) from None
        flag = (flags or {}).get(field) or prefix + field.replace("_", "-")
        given = first.get("input")
        got = "" if given is None or isinstance(given, dict) else f" (got {given!r})"
        raise InputError(f"{flag}: {error_text(first)}{got}") from None


def index_arg(value: str | None) -> Path | None:
    """``--index``: a folder, or ``none`` (any case) for no index."""
    return None if value is None or value.lower() == "none" else Path(value)


def progress_bar(total: int, label: str, enabled: bool):  # type: ignore[no-untyped-def]
    """A tqdm bar over ``total`` users and the ``update(n)`` that advances it and emits a progress event
    (at most every 2 s, and at the end)."""
    from tqdm import tqdm

    from ulmrec_eval.runtime.events import emit

    bar = tqdm(total=total, desc=label, disable=not enabled, leave=False, unit="user")
    state = {"done": 0, "last": 0.0}

    def update(n: int) -> None:
        state["done"] += n
        bar.update(n)
        now = time.monotonic()
        if now - state["last"] > 2 or state["done"] == total:
            state["last"] = now
            emit(stage=label, step=state["done"], total=total)

    return bar, update
