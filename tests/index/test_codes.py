"""Code tokens: format/parse round trips and malformed tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulmrec_eval.runtime.errors import InputError
from ulmrec_index.codes import default_token_format, format_code, parse_code, validate_token_format


def test_paper_example() -> None:
    assert format_code([71, 254, 87, 24]) == "<a_71><b_254><c_87><d_24>"
    assert parse_code("<a_71><b_254><c_87><d_24>") == [71, 254, 87, 24]


def test_custom_format_and_prefix() -> None:
    fmt = ["[u{}]", "[v{}]", "[w{}]"]
    assert format_code([1, 2, 3], fmt) == "[u1][v2][w3]"
    assert parse_code(" [u1][v2] ", fmt) == [1, 2]


@pytest.mark.parametrize("bad", ["", "<a_1><c_2>", "<a_x>", "<a_1> junk", "<b_1><a_2>"])
def test_malformed_tokens_raise(bad: str) -> None:
    with pytest.raises(InputError):
        parse_code(bad, default_token_format(2))


@pytest.mark.parametrize("fmt", [["<a_>"], ["<a_{}{}>"], ["<a_{}>", "<a_{}>"], []])
def test_bad_token_formats(fmt: list[str]) -> None:
    with pytest.raises(ValueError, match="token"):
        validate_token_format(fmt)


@given(st.lists(st.integers(min_value=0, max_value=65535), min_size=1, max_size=8))
def test_round_trip(codes: list[int]) -> None:
    assert parse_code(format_code(codes)) == codes
    assert parse_code(format_code(codes), default_token_format(len(codes))) == codes
