"""Limits on options that multiply work or scale scores (``ulmrec_eval.runtime.limits``)."""

from __future__ import annotations

import pytest

from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.limits import (
    MAX_FUSION_WEIGHT,
    MAX_TASK_WEIGHT,
    check_fusion_weight,
    check_limit,
    check_task_weight,
)


def test_values_inside_the_limits_pass() -> None:
    assert check_task_weight("rating", 0) == 0.0
    assert check_task_weight("rating", MAX_TASK_WEIGHT) == MAX_TASK_WEIGHT
    assert check_fusion_weight(0.5) == 0.5
    assert check_fusion_weight(MAX_FUSION_WEIGHT) == MAX_FUSION_WEIGHT


@pytest.mark.parametrize("value", [1e9, MAX_TASK_WEIGHT * 1.01, -0.1, float("nan"), float("inf"), True])
def test_a_task_weight_outside_the_limit_is_one_line(value: float) -> None:
    with pytest.raises(InputError, match=r"^--task-weight rating must be a number from 0 to 100 "
                                         r"\(samples per user of that task"):
        check_task_weight("rating", value)


@pytest.mark.parametrize("value", [1.7e308, MAX_FUSION_WEIGHT * 2, -1.0, float("-inf")])
def test_a_fusion_weight_that_would_overflow_is_refused(value: float) -> None:
    with pytest.raises(InputError, match=r"^--fuse-retriever must be a number from 0 to 1e\+06"):
        check_fusion_weight(value)


def test_check_limit_names_the_option_and_the_bounds() -> None:
    with pytest.raises(InputError, match=r"^--x must be a number from 1 to 3, got 4$"):
        check_limit(4, option="--x", low=1, high=3)
