"""The doctests of one module, run as a test: it must carry examples and every one must pass."""

from __future__ import annotations

import doctest
import importlib


def check_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no doctests"
    assert result.failed == 0
