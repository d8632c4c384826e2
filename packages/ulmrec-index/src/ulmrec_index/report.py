"""Quality figures of a user index (``report.json``) and their terminal table.

* per level: codes used / K and the perplexity ``exp(-sum_k p_k log p_k)`` of the code distribution
  (K for a perfectly balanced level);
* collisions: users whose full code equals another user's, counted as ``N - #distinct codes``;
* reconstruction error: ``mean_u ||x_u - decode(code_u)||^2`` and that divided by ``mean_u ||x_u -
  mean(x)||^2``;
* semantic coherence at prefix length p: the mean cosine similarity of the (mean, L2-normalised) *text*
  embeddings over pairs of users sharing their first p codes, divided by the same mean over all pairs of
  users (the exact expectation for a random pair). 1 = no better than random; higher is better.
  Computed exactly with group sums: for unit vectors, ``sum_{i != j in g} cos = ||S_g||^2 - n_g``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

REPORT_SCHEMA_VERSION = 1


class LevelStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: int
    codebook_size: int
    used: int
    perplexity: float


class Coherence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: int = Field(description="Number of leading codes two users share.")
    within: float | None = Field(
        description="Mean cosine over pairs sharing the prefix (None: no such pair)."
    )
    random: float | None = Field(description="Mean cosine over all pairs (None: fewer than 2 users).")
    ratio: float | None = Field(description="within / random.")
    n_pairs: int


class CodeStats(BaseModel):
    """Figures computable from codes and text embeddings alone (ours and a reference index alike)."""

    model_config = ConfigDict(extra="forbid")

    n_users: int
    levels: list[LevelStats]
    collisions: int = Field(description="N - number of distinct codes.")
    coherence: list[Coherence]

    @property
    def min_used(self) -> int:
        return min(level.used for level in self.levels)


class Repair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collisions_before: int
    collisions_after: int
    n_collided_before: int = Field(description="Users in a collided group before repair.")
    n_reassigned: int = Field(description="Users moved to another last-level code.")
    n_extra_level: int = Field(description="Users that needed the extra disambiguation level.")
    extra_level_used: bool


class IndexReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = REPORT_SCHEMA_VERSION
    n_users: int
    n_users_without_text: int = Field(description="Indexed from the user-ID path alone.")
    n_texts: int
    n_texts_truncated: int = Field(description="Texts longer than the encoder's max_seq_length (cut).")
    n_texts_encoded: int = Field(description="Texts the encoder ran on (the rest came from the cache).")
    fusion: str
    quantizer: str
    ours: CodeStats = Field(
        description="Codes after repair; an extra disambiguation level, when used, follows the base levels."
    )
    before_repair: CodeStats
    repair: Repair
    reconstruction_mse: float
    reconstruction_rel: float = Field(description="MSE / mean squared distance of x to its mean.")
    reference: CodeStats | None = None
    reference_users_matched: int | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def level_stats(codes: np.ndarray, codebook_sizes: list[int]) -> list[LevelStats]:
    """Codes used and perplexity per level of ``codes`` ``(N, L)``."""
    out = []
    for level in range(codes.shape[1]):
        size = codebook_sizes[level]
        counts = np.bincount(codes[:, level], minlength=size).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        out.append(
            LevelStats(
                level=level,
                codebook_size=size,
                used=int((counts > 0).sum()),
                perplexity=float(np.exp(-(p * np.log(p)).sum())),
            )
        )
    return out


def count_collisions(codes: np.ndarray) -> int:
    """``N - #distinct rows``: how many users would need another code."""
    if len(codes) == 0:
        return 0
    return int(len(codes) - len(np.unique(codes, axis=0)))


def coherence(text: np.ndarray, codes: np.ndarray, prefix: int) -> Coherence:
    """Semantic coherence of ``codes`` ``(N, L)`` for unit text vectors ``text`` ``(N, D)`` (see module
    doc)."""
    n = len(text)
    text64 = text.astype(np.float64)
    total = text64.sum(0)
    random = float((total @ total - n) / (n * (n - 1))) if n > 1 else None  # no pair: no figure (never NaN)
    _, group = np.unique(codes[:, :prefix], axis=0, return_inverse=True)
    group = group.reshape(-1)
    sums = np.zeros((int(group.max()) + 1 if n else 0, text.shape[1]))
    np.add.at(sums, group, text64)
    sizes = np.bincount(group).astype(np.float64)
    pair_sum = float(((sums * sums).sum(1) - sizes).sum())
    n_pairs = int((sizes * (sizes - 1)).sum())  # ordered pairs
    within = pair_sum / n_pairs if n_pairs else None
    ratio = within / random if within is not None and random is not None and random > 0 else None
    return Coherence(prefix=prefix, within=within, random=random, ratio=ratio, n_pairs=n_pairs // 2)


def code_stats(
    codes: np.ndarray, codebook_sizes: list[int], text: np.ndarray, prefixes: tuple[int, ...] = (1, 2)
) -> CodeStats:
    """Usage, perplexity, collisions and coherence of ``codes``; ``text`` rows align with ``codes`` rows and
    rows whose text vector is all zeros (users without text) are left out of the coherence figures."""
    has = np.abs(text).sum(1) > 0
    unit = text[has] / np.linalg.norm(text[has], axis=1, keepdims=True)
    return CodeStats(
        n_users=len(codes),
        levels=level_stats(codes, codebook_sizes),
        collisions=count_collisions(codes),
        coherence=[coherence(unit, codes[has], p) for p in prefixes if p <= codes.shape[1]],
    )


def reference_stats(
    reference: Mapping[str, Any], user_ids: list[str], text: np.ndarray
) -> tuple[CodeStats, int]:
    """:func:`code_stats` of a reference index (``{"levels", "codebook_size", "codes": {user_id: [...]}}``) on
    the users it shares with ours; returns the stats and the number of shared users."""
    ref_codes: dict[str, list[int]] = reference["codes"]
    rows = [i for i, uid in enumerate(user_ids) if uid in ref_codes]
    codes = np.array([ref_codes[user_ids[i]] for i in rows], dtype=np.int64).reshape(len(rows), -1)
    size = int(reference.get("codebook_size", int(codes.max()) + 1 if codes.size else 1))
    return code_stats(codes, [size] * codes.shape[1], text[rows]), len(rows)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_report(report: IndexReport) -> Any:
    """A ``rich`` table of the report (ours next to the reference when there is one)."""
    from rich.table import Table

    ref = report.reference
    table = Table(title=f"User index: {report.n_users} users, {report.quantizer}, fusion={report.fusion}")
    table.add_column("figure")
    table.add_column("ours", justify="right")
    if ref is not None:
        table.add_column(f"reference ({report.reference_users_matched} users)", justify="right")

    def row(name: str, ours: str, theirs: str = "-") -> None:
        table.add_row(name, ours, *([theirs] if ref is not None else []))

    for i, level in enumerate(report.ours.levels):
        theirs = ref.levels[i] if ref is not None and i < len(ref.levels) else None
        row(
            f"level {level.level}: used / K",
            f"{level.used} / {level.codebook_size}",
            f"{theirs.used} / {theirs.codebook_size}" if theirs else "-",
        )
        row(
            f"level {level.level}: perplexity",
            f"{level.perplexity:.1f}",
            f"{theirs.perplexity:.1f}" if theirs else "-",
        )
    row("collisions before repair", str(report.repair.collisions_before))
    row("collisions after repair", str(report.repair.collisions_after), str(ref.collisions) if ref else "-")
    row("re-assigned / extra level", f"{report.repair.n_reassigned} / {report.repair.n_extra_level}")
    row("reconstruction MSE (rel.)", f"{report.reconstruction_mse:.4f} ({report.reconstruction_rel:.3f})")
    for i, coh in enumerate(report.ours.coherence):
        theirs_coh = ref.coherence[i] if ref is not None and i < len(ref.coherence) else None
        row(
            f"coherence, {coh.prefix} code(s) shared",
            _fmt(coh.ratio),
            _fmt(theirs_coh.ratio if theirs_coh else None),
        )
    row("users without text (ID path)", str(report.n_users_without_text))
    row("texts truncated / encoded", f"{report.n_texts_truncated} / {report.n_texts_encoded}")
    return table
