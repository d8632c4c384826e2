"""Text clean-up shared by titles and user texts: HTML entities unescaped, whitespace normalised."""

from __future__ import annotations

import html


def unescape_html(text: str, *, max_rounds: int = 3) -> str:
    """Unescape HTML entities until stable (double-escaped ``&amp;amp;`` needs two rounds).

    >>> unescape_html("Rose &amp;amp; Thorn &quot;Glow&quot;")
    'Rose & Thorn "Glow"'
    """
    for _ in range(max_rounds):
        if "&" not in text:
            break
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return text


def normalize_text(text: str) -> str:
    """Unescape HTML entities and collapse every run of whitespace to one space.

    >>> normalize_text("  Salve&nbsp;&amp;\\n  Serum,\\t8 oz ")
    'Salve & Serum, 8 oz'
    """
    return " ".join(unescape_html(text).split())
