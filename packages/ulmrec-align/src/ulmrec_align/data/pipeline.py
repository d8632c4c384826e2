"""The preparation pipeline: raw source -> titled items -> k-core -> dense ids -> time-ordered sequences.

Steps (each recorded in ``manifest.stats``):

1. read the source (:mod:`.amazon` or :mod:`.recbole`);
2. normalise titles (HTML entities unescaped, whitespace collapsed) and drop interactions on untitled items;
3. optionally drop ratings below ``min_rating`` and repeated (user, item) interactions;
4. iterative k-core (items >= k, users >= max(k, min_sequence_length)) until stable;
5. dense 0-based ids in sorted order of raw ids (never set order), so the result is independent of
   ``PYTHONHASHSEED`` and of the input's row order;
6. each user's sequence sorted by (timestamp, dense item id); leave-one-out split;
7. per-user texts: review texts / summaries of the user's *training* interactions only (the validation and
   test items' reviews never leak into the user's profile), or the RecBole ``preference`` sentence as given;
   per-interaction ratings, review texts and summaries are kept beside the sequence (alignment tasks 5 and 6
   read them, for training interactions only).
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Literal

from ulmrec_align import __version__
from ulmrec_align.data.amazon import read_amazon
from ulmrec_align.data.config import PrepareConfig
from ulmrec_align.data.kcore import k_core_mask
from ulmrec_align.data.prepared import PreparedDataset, check_prepare_output
from ulmrec_align.data.raw import RawData, RawInteraction
from ulmrec_align.data.recbole import read_recbole
from ulmrec_align.data.schema import (
    DatasetCounts,
    ItemRecord,
    PreparedManifest,
    SourceFile,
    UserRecord,
    UserSequence,
)
from ulmrec_align.data.split import leave_one_out
from ulmrec_align.data.text import normalize_text
from ulmrec_eval.runtime.artifacts import sha256_file
from ulmrec_eval.runtime.errors import InputError

Source = Literal["amazon", "recbole"]


def read_source(source: Source, path: Path, config: PrepareConfig) -> RawData:
    """Run the reader for ``source`` on ``path``."""
    if source == "amazon":
        return read_amazon(path, category=config.category)
    if source == "recbole":
        return read_recbole(path)
    raise InputError(f"unknown source {source!r} (expected 'amazon' or 'recbole')")


def resolve_text_source(raw: RawData, wanted: str) -> str:
    """The text source actually used: ``auto`` picks preference, then reviews, then summaries, else none."""
    available = {"preference": bool(raw.preferences), "reviews": raw.has_reviews,
                 "summaries": raw.has_summaries}
    if wanted == "auto":
        return next((name for name in ("preference", "reviews", "summaries") if available[name]), "none")
    if wanted != "none" and not available[wanted]:
        have = ", ".join(name for name, ok in available.items() if ok) or "none"
        raise InputError(f"text_source {wanted!r} is not available in this source (available: {have})",
                         path=raw.sources[0] if raw.sources else None)
    return wanted


def _drop_repeats(interactions: list[RawInteraction], mode: str) -> list[RawInteraction]:
    if mode == "none":
        return interactions
    by_user: dict[str, list[RawInteraction]] = defaultdict(list)
    for x in interactions:
        by_user[x.user].append(x)
    kept: list[RawInteraction] = []
    for user in sorted(by_user):
        seen: set[str] = set()
        previous: str | None = None
        for x in sorted(by_user[user], key=lambda x: (x.timestamp, x.item)):
            repeat = x.item == previous if mode == "consecutive" else x.item in seen
            if not repeat:
                kept.append(x)
            seen.add(x.item)
            previous = x.item
    return kept


def _user_texts(train: list[RawInteraction], text_source: str, preference: str | None,
                config: PrepareConfig) -> list[str]:
    """Texts of the user's *training* interactions only (``train``), or the preference sentence."""
    if text_source == "preference":
        texts = [preference] if preference else []
    elif text_source in ("reviews", "summaries"):
        texts = [x.review if text_source == "reviews" else x.summary for x in train]  # type: ignore[misc]
    else:
        texts = []
    cleaned = [normalize_text(t) for t in texts if t]
    cleaned = [t[: config.max_text_chars] if config.max_text_chars else t for t in cleaned if t]
    if config.max_texts_per_user is not None:
        cleaned = cleaned[-config.max_texts_per_user:]
    return cleaned


def _interaction_texts(texts: list[str | None], config: PrepareConfig) -> list[str | None]:
    """Per-interaction texts, normalised and cut like user texts; None where an interaction has none."""
    out: list[str | None] = []
    for text in texts:
        cleaned = normalize_text(text) if text else ""
        if config.max_text_chars:
            cleaned = cleaned[: config.max_text_chars]
        out.append(cleaned or None)
    return out


def _user_subset(interactions: list[RawInteraction], config: PrepareConfig,
                 stats: dict[str, int]) -> list[RawInteraction]:
    """The interactions of a seeded random subset of ``config.max_users`` users (all when fewer)."""
    users = sorted({x.user for x in interactions})
    if config.max_users is None or len(users) <= config.max_users:
        return interactions
    kept = set(random.Random(config.subset_seed).sample(users, config.max_users))
    subset = [x for x in interactions if x.user in kept]
    stats["dropped_max_users"] = len(interactions) - len(subset)
    return subset


def build_dataset(raw: RawData, config: PrepareConfig | None = None, *,
                  name: str | None = None) -> PreparedDataset:
    """Turn what a reader found into a :class:`PreparedDataset` (in memory; nothing is written): filter the
    interactions (:func:`_filter_interactions`), then give users and items dense ids in sorted raw-id order
    (:func:`_records`)."""
    config = config or PrepareConfig()
    stats: dict[str, int] = {"raw_interactions": len(raw.interactions),
                             "raw_users": len({x.user for x in raw.interactions}),
                             "raw_items": len({x.item for x in raw.interactions})}
    titles = {item: normalize_text(title) for item, title in raw.titles.items()}
    titles = {item: title for item, title in titles.items() if title}
    interactions = _user_subset(_filter_interactions(raw, titles, config, stats), config, stats)
    text_source = resolve_text_source(raw, config.text_source)
    has_ratings = all(x.rating is not None for x in interactions)
    items, users, sequences = _records(raw, interactions, titles, config, text_source, has_ratings)
    manifest = PreparedManifest(
        name=name or raw.name,
        source_format=raw.source_format,
        counts=DatasetCounts(users=len(users), items=len(items), interactions=len(interactions)),
        sources=[SourceFile(path=str(p.resolve()), sha256=sha256_file(p), size=p.stat().st_size)
                 for p in raw.sources],
        config=config.model_dump(mode="json"),
        text_source=text_source,
        has_ratings=has_ratings,
        split_sha256="",
        ulmrec_version=__version__,
        stats=stats,
    )
    dataset = PreparedDataset(manifest=manifest, items=items, users=users, sequences=sequences)
    dataset.manifest.split_sha256 = dataset.compute_split_sha256()
    return dataset


def _filter_interactions(raw: RawData, titles: dict[str, str], config: PrepareConfig,
                         stats: dict[str, int]) -> list[RawInteraction]:
    """Drop interactions on untitled items, below ``min_rating``, repeated, and outside the k-core; each
    count goes into ``stats``."""
    interactions = [x for x in raw.interactions if x.item in titles]
    stats["dropped_untitled"] = len(raw.interactions) - len(interactions)
    if config.min_rating is not None:
        if not raw.has_ratings:
            raise InputError("min_rating is set but the source has no ratings",
                             path=raw.sources[0] if raw.sources else None)
        before = len(interactions)
        interactions = [x for x in interactions if x.rating is not None and x.rating >= config.min_rating]
        stats["dropped_low_rating"] = before - len(interactions)

    before = len(interactions)
    interactions = _drop_repeats(interactions, config.drop_repeats)
    stats["dropped_repeats"] = before - len(interactions)

    alive, rounds = k_core_mask([(x.user, x.item) for x in interactions], user_min=config.user_min,
                                item_min=config.k_core, max_rounds=config.k_core_rounds)
    stats["dropped_k_core"] = alive.count(False)
    stats["k_core_rounds"] = rounds
    interactions = [x for x, keep in zip(interactions, alive, strict=True) if keep]
    if not interactions:
        raise InputError(f"no interactions survive the {config.k_core}-core filter "
                         f"(read {stats['raw_interactions']}, {stats['dropped_untitled']} on untitled items)",
                         path=raw.sources[0] if raw.sources else None)
    return interactions


def _records(raw: RawData, interactions: list[RawInteraction], titles: dict[str, str], config: PrepareConfig,
             text_source: str, has_ratings: bool
             ) -> tuple[list[ItemRecord], list[UserRecord], list[UserSequence]]:
    """Items, users (their texts from the training part of the history only) and time-ordered sequences."""
    raw_users = sorted({x.user for x in interactions})
    raw_items = sorted({x.item for x in interactions})
    item_id = {raw_id: dense for dense, raw_id in enumerate(raw_items)}
    by_user: dict[str, list[RawInteraction]] = defaultdict(list)
    for x in interactions:
        by_user[x.user].append(x)
    has_reviews = any(x.review for x in interactions)
    has_summaries = any(x.summary for x in interactions)
    items = [ItemRecord(item_id=dense, raw_id=raw_id, title=titles[raw_id])
             for dense, raw_id in enumerate(raw_items)]
    users: list[UserRecord] = []
    sequences: list[UserSequence] = []
    for dense, raw_id in enumerate(raw_users):
        history = sorted(by_user[raw_id], key=lambda x: (x.timestamp, item_id[x.item]))
        dense_items = [item_id[x.item] for x in history]
        n_train = len(leave_one_out(dense, dense_items).train)  # never the validation or test item's text
        sequences.append(UserSequence(
            user_id=dense,
            items=dense_items,
            timestamps=[x.timestamp for x in history],
            ratings=[float(x.rating) for x in history] if has_ratings else None,  # type: ignore[arg-type]
            reviews=_interaction_texts([x.review for x in history], config) if has_reviews else None,
            summaries=_interaction_texts([x.summary for x in history], config) if has_summaries else None,
        ))
        preference = raw.preferences.get(raw_id)
        users.append(UserRecord(user_id=dense, raw_id=raw_id,
                                texts=_user_texts(history[:n_train], text_source, preference, config),
                                preference=normalize_text(preference) or None if preference else None))
    return items, users, sequences


def prepare_dataset(*, source: Source, path: Path, out: Path | None = None,
                    config: PrepareConfig | None = None, name: str | None = None,
                    force: bool = False) -> PreparedDataset:
    """Read ``path`` as ``source``, run the pipeline and, when ``out`` is given, write the prepared folder.

    Everything is validated in memory before the first byte is written; the folder appears whole or not at
    all (:meth:`PreparedDataset.save`); a non-empty ``out`` needs ``force``.
    """
    config = config or PrepareConfig()
    if out is not None:
        check_prepare_output(Path(out), Path(path), force=force)
    raw = read_source(source, Path(path), config)
    dataset = build_dataset(raw, config, name=name)
    if out is not None:
        dataset.save(out, force=force)
    return dataset
