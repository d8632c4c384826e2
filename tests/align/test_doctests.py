"""Run the doctests of ulmrec_align's modules that carry examples (they were never run before)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["ulmrec_align.ranking.scorer", "ulmrec_align.ranking.ranker", "ulmrec_align.ranking.fusion",
           "ulmrec_align.tasks.builders", "ulmrec_align.tasks.build"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no doctests"
    assert result.failed == 0
