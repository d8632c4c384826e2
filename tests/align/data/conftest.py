"""Fixture writers for the data tests: raw Amazon files (gzipped, in the crawl's format) and RecBole files."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

AmazonWriter = Callable[..., Path]


def write_gz_lines(path: Path, lines: Sequence[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path


def review(
    user: str,
    item: str,
    when: int,
    *,
    rating: float = 5.0,
    text: str | None = None,
    summary: str | None = None,
) -> dict[str, Any]:
    """A review record with the 2014 crawl's fields."""
    return {
        "reviewerID": user,
        "asin": item,
        "reviewerName": "N. N.",
        "helpful": [0, 0],
        "reviewText": text if text is not None else f"review of {item} by {user}",
        "overall": rating,
        "summary": summary if summary is not None else f"summary {item} {user}",
        "unixReviewTime": when,
        "reviewTime": "01 1, 2014",
    }


@pytest.fixture
def write_amazon() -> AmazonWriter:
    """``write_amazon(folder, reviews, meta, category="Toys", crawl="2014")`` writes the two gzipped files.

    2014: ``reviews_<Cat>_5.json.gz`` (JSON lines) + ``meta_<Cat>.json.gz`` (Python literals, one per line);
    2018: ``<Cat>_5.json.gz`` + ``meta_<Cat>.json.gz`` (JSON lines).
    """

    def write(
        folder: Path,
        reviews: Sequence[dict[str, Any]],
        meta: Sequence[dict[str, Any]],
        *,
        category: str = "Toys",
        crawl: str = "2014",
    ) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        reviews_name = f"reviews_{category}_5.json.gz" if crawl == "2014" else f"{category}_5.json.gz"
        write_gz_lines(folder / reviews_name, [json.dumps(r) for r in reviews])
        encode = repr if crawl == "2014" else json.dumps
        write_gz_lines(folder / f"meta_{category}.json.gz", [encode(m) for m in meta])
        return folder

    return write


def write_atomic(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """A RecBole atomic file: typed header then tab-separated rows."""
    lines = ["\t".join(header)] + ["\t".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def cascade_reviews() -> list[dict[str, Any]]:
    """A hand-checked case for k=2, min length 3 (see test_pipeline.py for the expected outcome).

    Item X has no title; E has one interaction, which drops u4 (left with 2), which drops D (left with 1),
    which drops u3 (left with 2). u2 bought B and A on the same day (file order B, A).
    """
    a, b, c, d, e, x = ("B000000AAA", "B000000BBB", "B000000CCC", "B000000DDD", "B000000EEE", "B000000XXX")
    return [
        review("AU1", a, 10, rating=4.0, text="Loved the  A.\n"),
        review("AU1", b, 20, rating=3.0),
        review("AU1", c, 30, rating=5.0, text="C is my test item"),
        review("AU1", x, 5),
        review("AU2", b, 10, rating=2.0),
        review("AU2", a, 10, rating=1.0),
        review("AU2", c, 20),
        review("AU3", c, 1),
        review("AU3", d, 2),
        review("AU3", a, 3),
        review("AU4", d, 1),
        review("AU4", e, 2),
        review("AU4", b, 3),
    ]


@pytest.fixture
def cascade_meta() -> list[dict[str, Any]]:
    return [
        {"asin": "B000000AAA", "title": "Foo &amp;amp; Bar Blocks", "price": 9.99, "categories": [["Toys"]]},
        {"asin": "B000000BBB", "title": "  Robot\n  Kit,   12 pieces ", "categories": [["Toys"]]},
        {"asin": "B000000CCC", "title": 'Kid\'s "Deluxe" Puzzle', "salesRank": {"Toys": 5}},
        {"asin": "B000000DDD", "title": "Dino Set"},
        {"asin": "B000000EEE", "title": "Eel Plush"},
        {"asin": "B000000XXX", "description": "no title here"},
        {"asin": "B000000ZZZ", "title": "Never Reviewed"},
    ]


@pytest.fixture
def make_review() -> Callable[..., dict[str, Any]]:
    """The :func:`review` record builder (importlib mode: tests get helpers through fixtures)."""
    return review
