"""Built-in declarations read from their modules: each module of a registry (losses, answer kinds) binds one
instance of the registry's class to a module-level name, and the registry lists those modules in order."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


def declared(modules: Sequence[str], attribute: str, kind: type[T]) -> dict[str, T]:
    """``{instance.name: instance}`` of each module's ``attribute``, in module order; a module whose
    ``attribute`` is missing or not a ``kind`` raises ``TypeError`` naming it."""
    out: dict[str, T] = {}
    for module in modules:
        value = getattr(importlib.import_module(module), attribute, None)
        if not isinstance(value, kind):
            raise TypeError(f"{module} declares no {attribute} (an instance of {kind.__name__})")
        out[value.name] = value
    return out
