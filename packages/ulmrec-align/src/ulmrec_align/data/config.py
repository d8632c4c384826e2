"""The configuration of ``prepare_dataset`` (stored verbatim in the prepared folder's manifest)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TextSource = Literal["auto", "reviews", "summaries", "preference", "none"]


class PrepareConfig(BaseModel):
    """How raw interactions become a prepared dataset (see docs/data.md for the pipeline)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k_core: int = Field(default=5, ge=1, description="Keep only users and items with >= k interactions, "
                        "applied iteratively (items, then users) until nothing changes.")
    k_core_rounds: int | None = Field(
        default=None, ge=1, description="Stop the k-core after this many rounds (1 = LlamaRec's single "
        "items-then-users pass); None = until stable.")
    min_sequence_length: int = Field(
        default=3, ge=3, description="Users need at least this many interactions (the leave-one-out split "
        "needs 3); combined with k_core as max(k_core, this).")
    min_rating: float | None = Field(
        default=None, allow_inf_nan=False, description="Drop interactions rated below this before the "
        "k-core (None keeps all; only for sources with ratings; NaN and infinities are refused).")
    drop_repeats: Literal["none", "consecutive", "all"] = Field(
        default="none", description="Repeated (user, item) interactions: keep all, drop immediate repeats in "
        "time order, or keep only the first occurrence.")
    text_source: TextSource = Field(
        default="auto", description="Per-user texts: review texts, review summaries, the RecBole "
        "`preference` column, or none. 'auto' takes preference, then reviews, then summaries, whichever the "
        "source has.")
    max_texts_per_user: int | None = Field(
        default=None, ge=1, description="Keep only the most recent N texts per user (None keeps all).")
    max_text_chars: int | None = Field(
        default=None, ge=1, description="Cut each user text to this many characters (None keeps them whole).")
    max_users: int | None = Field(
        default=None, ge=1, description="After the k-core filter, keep a seeded random subset of this many "
        "users (items none of them interacted with disappear; no second k-core pass). None keeps all.")
    subset_seed: int = Field(default=0, description="Seed of the max_users subset.")
    category: str | None = Field(
        default=None, description="Amazon only: the category to read (e.g. 'Beauty') when the folder holds "
        "files of several categories.")

    @property
    def user_min(self) -> int:
        """Minimum interactions per user: ``max(k_core, min_sequence_length)``."""
        return max(self.k_core, self.min_sequence_length)
