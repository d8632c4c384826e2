"""Summary statistics of a prepared dataset (``ulmrec data inspect``)."""

from __future__ import annotations

import statistics

from pydantic import BaseModel, Field

from ulmrec_align.data.prepared import PreparedDataset


class LengthStats(BaseModel):
    """Distribution of per-user sequence lengths."""

    min: int
    max: int
    mean: float
    median: float
    p90: float


class DatasetStats(BaseModel):
    """Counts, sparsity and sequence-length statistics of a prepared dataset."""

    name: str
    users: int
    items: int
    interactions: int
    density: float = Field(description="interactions / (users * items)")
    sparsity: float = Field(description="1 - density")
    sequence_length: LengthStats
    item_interactions: LengthStats = Field(description="Distribution of interactions per item.")
    users_with_texts: int
    texts_per_user: float
    text_source: str
    has_ratings: bool
    mean_rating: float | None = None
    split_sha256: str


def _lengths(values: list[int]) -> LengthStats:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return LengthStats(min=ordered[0], max=ordered[-1], mean=statistics.fmean(ordered),
                       median=float(statistics.median(ordered)), p90=float(p90))


def dataset_stats(dataset: PreparedDataset) -> DatasetStats:
    """Compute :class:`DatasetStats` (sequence lengths include the validation and test items)."""
    lengths = [len(seq.items) for seq in dataset.sequences]
    per_item = [0] * dataset.n_items
    for seq in dataset.sequences:
        for item in seq.items:
            per_item[item] += 1
    interactions = sum(lengths)
    cells = dataset.n_users * dataset.n_items
    density = interactions / cells if cells else 0.0
    ratings = [r for seq in dataset.sequences for r in (seq.ratings or [])]
    return DatasetStats(
        name=dataset.manifest.name, users=dataset.n_users, items=dataset.n_items, interactions=interactions,
        density=density, sparsity=1.0 - density, sequence_length=_lengths(lengths or [0]),
        item_interactions=_lengths(per_item or [0]),
        users_with_texts=sum(1 for u in dataset.users if u.texts),
        texts_per_user=statistics.fmean(len(u.texts) for u in dataset.users) if dataset.users else 0.0,
        text_source=dataset.manifest.text_source, has_ratings=dataset.manifest.has_ratings,
        mean_rating=statistics.fmean(ratings) if ratings else None,
        split_sha256=dataset.manifest.split_sha256,
    )
