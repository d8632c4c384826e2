"""Code tokens: ``[71, 254, 87, 24]`` <-> ``"<a_71><b_254><c_87><d_24>"``.

A *token format* is one template per level, each with a single ``{}`` for the code, e.g.
``["<a_{}>", "<b_{}>", "<c_{}>", "<d_{}>"]``. :func:`default_token_format` gives the lettered one the paper
uses.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from ulmrec_eval.runtime.errors import InputError

TokenFormat = list[str]


def default_token_format(levels: int) -> TokenFormat:
    """``<a_{}>``, ``<b_{}>``, … for ``levels`` levels (at most 26).

    >>> default_token_format(2)
    ['<a_{}>', '<b_{}>']
    """
    if not 1 <= levels <= len(string.ascii_lowercase):
        raise ValueError(f"levels must be in [1, 26], got {levels}")
    return [f"<{letter}_{{}}>" for letter in string.ascii_lowercase[:levels]]


def validate_token_format(token_format: Sequence[str]) -> TokenFormat:
    """Check each template has exactly one ``{}`` and that the templates are pairwise distinct."""
    out = list(token_format)
    if not out:
        raise ValueError("token format needs at least one level")
    for template in out:
        if template.count("{}") != 1:
            raise ValueError(f"token template {template!r} must contain exactly one '{{}}'")
    if len(set(out)) != len(out):
        raise ValueError(f"token templates must be distinct, got {out}")
    return out


def format_code(codes: Sequence[int], token_format: Sequence[str] | None = None) -> str:
    """Render one user's code as tokens.

    >>> format_code([71, 254, 87, 24])
    '<a_71><b_254><c_87><d_24>'
    >>> format_code([3, 9], ["[x{}]", "[y{}]"])
    '[x3][y9]'
    """
    fmt = default_token_format(len(codes)) if token_format is None else list(token_format)
    if len(fmt) < len(codes):
        raise ValueError(f"token format has {len(fmt)} levels, code has {len(codes)}")
    return "".join(template.format(int(code)) for template, code in zip(fmt, codes, strict=False))


def _level_regex(template: str) -> str:
    before, after = template.split("{}")
    return re.escape(before) + r"(\d+)" + re.escape(after)


def parse_code(
    text: str, token_format: Sequence[str] | None = None, *, levels: int | None = None
) -> list[int]:
    """Parse tokens back into integers; the inverse of :func:`format_code`.

    With no ``token_format`` the lettered default is assumed and the number of levels is read from the text
    (or fixed by ``levels``). Surrounding whitespace is ignored; anything else raises :class:`InputError`.

    >>> parse_code("<a_71><b_254><c_87><d_24>")
    [71, 254, 87, 24]
    """
    stripped = text.strip()
    if token_format is None:
        n = levels if levels is not None else len(re.findall(r"<[a-z]_\d+>", stripped))
        if n == 0:
            raise InputError(f"no code tokens in {text!r}")
        fmt = default_token_format(n)
    else:
        fmt = validate_token_format(token_format)
        if levels is not None:
            fmt = fmt[:levels]
    # Accept a code with fewer levels than the format only when it matches a prefix of the templates exactly.
    for n_levels in range(len(fmt), 0, -1):
        match = re.fullmatch("".join(_level_regex(t) for t in fmt[:n_levels]), stripped)
        if match:
            return [int(group) for group in match.groups()]
    raise InputError(f"{text!r} does not match the token format {fmt}")
