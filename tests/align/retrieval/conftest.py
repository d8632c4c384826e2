"""Small in-memory prepared datasets for the retriever tests (random sequences with a sequential signal)."""

from __future__ import annotations

import random

import pytest
import torch

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.data.schema import DatasetCounts, ItemRecord, PreparedManifest, UserRecord, UserSequence


def make_dataset(*, n_users: int = 40, n_items: int = 30, seed: int = 0,
                 max_length: int = 14) -> PreparedDataset:
    """Users walk item ids upwards (next = current + 1 or + 2, mod n_items) with some random jumps."""
    rng = random.Random(seed)
    items = [ItemRecord(item_id=i, raw_id=f"I{i:04d}", title=f"item {i}") for i in range(n_items)]
    users = [UserRecord(user_id=u, raw_id=f"U{u:04d}") for u in range(n_users)]
    sequences = []
    for u in range(n_users):
        length = rng.randint(3, max_length)
        current = rng.randrange(n_items)
        seq = [current]
        for _ in range(length - 1):
            jump = rng.random() < 0.2
            current = rng.randrange(n_items) if jump else (current + rng.choice((1, 2))) % n_items
            seq.append(current)
        sequences.append(UserSequence(user_id=u, items=seq, timestamps=[float(t) for t in range(length)]))
    manifest = PreparedManifest(name="tiny", source_format="recbole",
                                counts=DatasetCounts(users=n_users, items=n_items,
                                                     interactions=sum(len(s.items) for s in sequences)),
                                split_sha256="", ulmrec_version="test")
    dataset = PreparedDataset(manifest=manifest, items=items, users=users, sequences=sequences)
    dataset.manifest.split_sha256 = dataset.compute_split_sha256()
    return dataset


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def tiny() -> PreparedDataset:
    return make_dataset()
