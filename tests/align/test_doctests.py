"""Run the doctests of ulmrec_align's modules that carry examples (they were never run before)."""

from __future__ import annotations

import pytest
from support.doctests import check_doctests

MODULES = ["ulmrec_align.ranking.scorer", "ulmrec_align.ranking.ranker", "ulmrec_align.ranking.fusion",
           "ulmrec_align.tasks.builders", "ulmrec_align.tasks.build", "ulmrec_align.prompts.sizes"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    check_doctests(name)
