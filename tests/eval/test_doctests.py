"""Run the doctests of ulmrec_eval's modules (each metric's docstring carries its formula and an example)."""

from __future__ import annotations

import pytest
from support.doctests import check_doctests

MODULES = ["ulmrec_eval.metrics", "ulmrec_eval.evaluation", "ulmrec_eval.compare", "ulmrec_eval.predictions"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    check_doctests(name)
