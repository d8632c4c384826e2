"""Size and pack strings removed from product titles (``PromptConfig.strip_sizes``, ``align build
--strip-sizes``): ``", 6.7 fl oz"``, ``"Pack of 3"``, ``"(2 Count)"``, ``"- 8 Ounce"``, ``"1 oz / 30 ml"``.

They carry no taste, cost 3–6 tokens a title, and make two titles of one product differ; a title that would be
left empty is kept whole.
"""

from __future__ import annotations

import re

_UNIT = (r"(?:fl\.?\s*oz|fluid\s+ounces?|ounces?|oz|ml|millilit(?:er|re)s?|lit(?:er|re)s?|l|kg|mg|g|grams?|"
         r"lbs?|pounds?|count|ct|pcs|pieces|sheets|capsules|tablets|pads|wipes)\.?")
_SIZE = (rf"(?:\d+(?:[.,]\d+)?|[.,]\d+)\s*-?\s*{_UNIT}(?![\w-])"
         r"(?:\s+(?:packages?|bottles?|boxe?s?|tubes?|jars?|cans?|bars?|each)(?![\w-]))?")
_PACK = r"(?:(?:pack|set|box|case|lot|bundle)\s+of\s+\d+|\d+\s*-?\s*(?:pack|pk|pcs|piece|count|ct)(?![\w-]))"
_ONE = rf"(?:{_SIZE}|{_PACK})"
#: One size or pack expression, or several joined by "/", "x", "+" or "each", with the separator before it.
_STRING = re.compile(rf"\s*[,;\-–—/|]?\s*[(\[]?\s*{_ONE}(?:\s*(?:/|x|\+|,|each)\s*{_ONE})*\s*[)\]]?",
                     re.IGNORECASE)
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_SPACE_BEFORE_COMMA = re.compile(r"\s+(?=[,;.])")
_ENDS = re.compile(r"^[\s,;\-–—/|)]+|[\s,;\-–—/|(]+$")


def strip_sizes(title: str) -> str:
    """``title`` without its size and pack strings and the separators they leave (whole when nothing
    else is left).

    >>> strip_sizes("Derma Clarity Vegan Gentle Toner, 6.7 fl oz")
    'Derma Clarity Vegan Gentle Toner'
    >>> strip_sizes("Silk Theory Shampoo (Pack of 3)")
    'Silk Theory Shampoo'
    >>> strip_sizes("As I Am Double Butter Rich Daily Moisturizer, 8 Ounce")
    'As I Am Double Butter Rich Daily Moisturizer'
    >>> strip_sizes("Serum - In 1 oz / 30 ml")
    'Serum - In'
    >>> strip_sizes("Lumière Hydrating Sunscreen SPF 50, Set of 2")
    'Lumière Hydrating Sunscreen SPF 50'
    >>> strip_sizes("Beach Tint 0.24 fl oz. Watermelon")
    'Beach Tint Watermelon'
    >>> strip_sizes("Light To Medium 810, 1.35-Ounce Packages (Pack of 2)")
    'Light To Medium 810'
    >>> strip_sizes("Concealer SPF15 - Sand, .5 fl oz")
    'Concealer SPF15 - Sand'
    >>> strip_sizes("3-Step Kit")
    '3-Step Kit'
    >>> strip_sizes("8 oz")
    '8 oz'
    """
    stripped = _EMPTY_BRACKETS.sub(" ", _STRING.sub(" ", title))
    stripped = _ENDS.sub("", _SPACE_BEFORE_COMMA.sub("", " ".join(stripped.split())))
    return stripped or title
