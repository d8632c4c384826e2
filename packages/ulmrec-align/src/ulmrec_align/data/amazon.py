"""Reader of the raw Amazon review crawls: ``reviews_<Cat>_5.json.gz`` + ``meta_<Cat>.json.gz``.

Reviews are JSON lines (``reviewerID, asin, overall, reviewText, summary, unixReviewTime``). Meta records
are one Python-literal dict per line in the 2014 crawl (single quotes: parsed with :func:`ast.literal_eval`,
never ``eval``) and JSON lines in the 2018 crawl (file ``<Cat>_5.json.gz`` for reviews); the format is
detected from the first record and each line falls back to the other parser.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from ulmrec_align.data.lines import finite, iter_lines, raw_id
from ulmrec_align.data.raw import RawData, RawInteraction, SourceFormat
from ulmrec_eval.runtime.errors import InputError

REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")
_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")
_REVIEWS_2014 = re.compile(r"^reviews_(?P<cat>.+?)(?:_5)?\.json(?:\.gz)?$")
_REVIEWS_2018 = re.compile(r"^(?P<cat>[A-Z][A-Za-z_]+?)(?:_5)?\.json(?:\.gz)?$")


def find_amazon_files(path: Path, category: str | None = None) -> tuple[Path, Path, str]:
    """Locate ``(reviews, meta, category)`` from a folder, a reviews file, or a folder + category."""
    if path.is_file():
        reviews = path
        match = _REVIEWS_2014.match(path.name) or _REVIEWS_2018.match(path.name)
        if match is None:
            raise InputError("expected a file named reviews_<Category>_5.json.gz", path=path)
        category = match["cat"]
        folder = path.parent
    elif path.is_dir():
        folder = path
        found: dict[str, Path] = {}
        for candidate in sorted(folder.iterdir()):
            if candidate.name.startswith("meta_"):
                continue
            match = _REVIEWS_2014.match(candidate.name) or _REVIEWS_2018.match(candidate.name)
            if match is not None and candidate.is_file():
                found.setdefault(match["cat"], candidate)
        if category is None:
            if len(found) != 1:
                what = ", ".join(sorted(found)) or "none"
                raise InputError(f"expected exactly one reviews_<Category>_5.json.gz file, found {what} "
                                 "(pass a category)", path=folder)
            category = next(iter(found))
        if category not in found:
            raise InputError(f"no reviews file for category {category!r}", path=folder)
        reviews = found[category]
    else:
        raise InputError("no such file or folder", path=path)
    for meta_name in (f"meta_{category}.json.gz", f"meta_{category}.json"):
        if (folder / meta_name).is_file():
            return reviews, folder / meta_name, category
    raise InputError(f"missing the meta file meta_{category}.json.gz beside the reviews", path=folder)


def _field(record: dict[str, Any], key: str, path: Path, line: int) -> Any:
    if key not in record:
        raise InputError(f"missing field {key!r}", path=path, line=line)
    return record[key]


def read_reviews(path: Path) -> list[RawInteraction]:
    """Parse a reviews file into raw interactions (file order)."""
    out: list[RawInteraction] = []
    for number, line in iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg})", path=path, line=number) from None
        if not isinstance(record, dict):
            raise InputError("expected a JSON object", path=path, line=number)
        user, item, when = (_field(record, key, path, number) for key in REVIEW_KEYS)
        timestamp = finite(when, "unixReviewTime", path, number)
        overall = record.get("overall")
        rating = None if overall is None else finite(overall, "overall", path, number)
        review, summary = record.get("reviewText"), record.get("summary")
        out.append(RawInteraction(
            user=raw_id(user, "reviewerID", path, number), item=raw_id(item, "asin", path, number),
            timestamp=timestamp, rating=rating,
            review=review if isinstance(review, str) else None,
            summary=summary if isinstance(summary, str) else None,
        ))
    return out


def _parse_meta_line(line: str, *, json_first: bool) -> Any:
    parsers = (_json, ast.literal_eval) if json_first else (ast.literal_eval, _json)
    for parse in parsers:
        try:
            return parse(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    raise ValueError("neither JSON nor a Python literal")


def _json(line: str) -> Any:
    return json.loads(line)  # json.JSONDecodeError is a ValueError


def read_meta_titles(path: Path, wanted: set[str] | None = None) -> tuple[dict[str, str], SourceFormat]:
    """Map ASIN -> raw title (items without a title are absent) and tell the crawl (2014 literal / 2018 JSON).

    ``wanted`` restricts parsing to those ASINs (a cheap regex reads the ASIN first): meta files are large.
    """
    titles: dict[str, str] = {}
    json_first: bool | None = None
    for number, line in iter_lines(path):
        text = line.strip()
        if wanted is not None:
            match = _ASIN.search(text)
            if match is not None and match[1] not in wanted:
                continue
        if json_first is None:
            try:
                json.loads(text)
                json_first = True
            except ValueError:
                json_first = False
        try:
            record = _parse_meta_line(text, json_first=json_first)
        except ValueError as exc:
            raise InputError(f"malformed meta record ({exc})", path=path, line=number) from None
        if not isinstance(record, dict):
            raise InputError("expected a dict per line", path=path, line=number)
        asin = _field(record, "asin", path, number)
        title = record.get("title")
        if isinstance(title, str) and title.strip():
            titles.setdefault(str(asin), title)
    return titles, "amazon2018" if json_first else "amazon2014"


def read_amazon(path: Path, *, category: str | None = None) -> RawData:
    """Read one Amazon category (reviews + meta) into :class:`RawData`."""
    reviews_path, meta_path, category = find_amazon_files(Path(path), category)
    interactions = read_reviews(reviews_path)
    titles, source_format = read_meta_titles(meta_path, wanted={x.item for x in interactions})
    return RawData(
        source_format=source_format,
        name=f"amazon-{category.lower().replace('_', '-')}",
        interactions=interactions,
        titles=titles,
        sources=[reviews_path, meta_path],
    )
