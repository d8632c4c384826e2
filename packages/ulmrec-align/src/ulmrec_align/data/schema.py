"""Pydantic schemas of a prepared dataset folder (the contract between the data stage and every later stage).

A prepared dataset is a folder::

    manifest.json      PreparedManifest
    items.jsonl        one ItemRecord per line, sorted by item_id (dense ids 0..n_items-1)
    users.jsonl        one UserRecord per line, sorted by user_id (dense ids 0..n_users-1)
    sequences.jsonl    one UserSequence per line, sorted by user_id; items in time order

Dense ids are 0-based and assigned by sorting the raw ids (never by set order). Models that need a padding
id shift by one internally.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PREPARED_SCHEMA_VERSION = 1


class ItemRecord(BaseModel):
    """One item: dense id, raw id (ASIN) and normalised title."""

    model_config = ConfigDict(extra="forbid")

    item_id: int = Field(ge=0, description="Dense 0-based id, assigned in sorted order of raw_id.")
    raw_id: str = Field(description="The source's item id (the ASIN for Amazon).")
    title: str = Field(description="Title with HTML entities unescaped and whitespace normalised.")


class UserRecord(BaseModel):
    """One user: dense id, raw id and the texts that describe them (reviews, summaries or a preference)."""

    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=0, description="Dense 0-based id, assigned in sorted order of raw_id.")
    raw_id: str = Field(description="The source's user id (the reviewerID for Amazon).")
    texts: list[str] = Field(
        default_factory=list,
        description="Texts describing the user, in time order of the interactions they come from "
        "(training interactions only where they can be attributed; see PreparedManifest.text_source).",
    )
    preference: str | None = Field(
        default=None, description="A one-sentence preference summary where the source has one (RecBole "
        "`preference` column); alignment tasks 2 and 3 use it.")


class UserSequence(BaseModel):
    """A user's interactions in time order (ties broken by dense item id)."""

    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=0)
    items: list[int] = Field(
        description="Dense item ids in time order; the last is test, the one before validation.")
    timestamps: list[float] = Field(description="One timestamp per item (the source's unit).")
    ratings: list[float] | None = Field(
        default=None, description="One rating per item where the source has them.")
    reviews: list[str | None] | None = Field(
        default=None, description="One review text per item (None where that interaction has none), where "
        "the source has review texts; normalised like titles. Alignment task 6 writes intents from them.")
    summaries: list[str | None] | None = Field(
        default=None, description="One review summary per item (None where missing), where the source has "
        "summaries.")


class SourceFile(BaseModel):
    """A file read to build the dataset, with its content hash."""

    path: str
    sha256: str
    size: int


class DatasetCounts(BaseModel):
    users: int
    items: int
    interactions: int


class PreparedManifest(BaseModel):
    """``manifest.json`` of a prepared dataset."""

    schema_version: int = PREPARED_SCHEMA_VERSION
    kind: Literal["prepared-dataset"] = "prepared-dataset"
    name: str = Field(description="Dataset name, e.g. 'amazon-beauty'.")
    source_format: Literal["amazon2014", "amazon2018", "recbole"] = Field(description="Reader used.")
    counts: DatasetCounts
    sources: list[SourceFile] = Field(default_factory=list)
    config: dict[str, object] = Field(default_factory=dict, description="The preparation config, as given.")
    text_source: str = Field(default="none", description="Where UserRecord.texts come from: reviews, "
                             "summaries, preference or none.")
    has_ratings: bool = False
    split_sha256: str = Field(
        description="sha256 of the canonical leave-one-out split (see split.canonical_split_text).")
    ulmrec_version: str
    stats: dict[str, int] = Field(
        default_factory=dict, description="What each pipeline step did: raw counts, interactions dropped "
        "(untitled items, low ratings, repeats, k-core), k-core rounds that removed something.")
