"""The in-memory result of a reader: raw interactions, titles and user texts, before any filtering."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SourceFormat = Literal["amazon2014", "amazon2018", "recbole"]


@dataclass(slots=True)
class RawInteraction:
    """One interaction in raw ids; texts and rating are None where the source lacks them."""

    user: str
    item: str
    timestamp: float
    rating: float | None = None
    review: str | None = None
    summary: str | None = None


@dataclass
class RawData:
    """Everything a reader found: interactions in file order, raw item titles, raw user preferences."""

    source_format: SourceFormat
    name: str
    interactions: list[RawInteraction]
    titles: dict[str, str]
    preferences: dict[str, str] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    @property
    def has_reviews(self) -> bool:
        return any(x.review for x in self.interactions)

    @property
    def has_summaries(self) -> bool:
        return any(x.summary for x in self.interactions)

    @property
    def has_ratings(self) -> bool:
        return bool(self.interactions) and all(x.rating is not None for x in self.interactions)
