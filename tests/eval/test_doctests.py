"""Run the doctests of ulmrec_eval's modules (each metric's docstring carries its formula and an example)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["ulmrec_eval.metrics", "ulmrec_eval.evaluation", "ulmrec_eval.compare", "ulmrec_eval.predictions"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no doctests"
    assert result.failed == 0
