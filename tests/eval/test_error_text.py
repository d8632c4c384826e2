"""Pydantic errors read as the validator's sentence, without pydantic's type prefix."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, field_validator, model_validator

from ulmrec_eval.runtime.errors import error_text


class _Settings(BaseModel):
    size: int

    @field_validator("size")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("size must be positive")
        return value

    @model_validator(mode="after")
    def _even(self) -> _Settings:
        if self.size % 2:
            raise AssertionError("size must be even")  # not `assert`: pytest rewrites asserts in tests
        return self


@pytest.mark.parametrize(("given", "text"), [
    ({"size": -1}, "size must be positive"),          # "Value error, size must be positive" from pydantic
    ({"size": 3}, "size must be even"),               # "Assertion failed, size must be even"
    ({"size": "x"}, "Input should be a valid integer, unable to parse string as an integer"),
])
def test_error_text_is_the_sentence(given: dict[str, object], text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Settings.model_validate(given)
    assert error_text(caught.value.errors()[0]) == text
