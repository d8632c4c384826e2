"""Cold start: codes for users the fit never saw, none of which clashes with the index or with another new
user.

A new user is fused from its texts (or given vector) alone, since it has no learned ID embedding, quantized,
and moved to the nearest free last-level code after its prefix; with extra levels, to the first free slot
under that code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ulmrec_index.artifact import IndexArtifact
from ulmrec_index.config import IndexerError
from ulmrec_index.embedding import text_bank
from ulmrec_index.encoders import (
    Encoder,
    EncoderError,
    PrecomputedEncoder,
    UnavailableEncoder,
    single_threaded,
)
from ulmrec_index.fusion import TextBank, UserFusion
from ulmrec_index.quantizers.base import Quantizer
from ulmrec_index.training import set_eval
from ulmrec_index.users import UserText


def embed_new_users(users: Sequence[UserText], get_encoder: Callable[[], Encoder],
                    artifact: IndexArtifact) -> TextBank:
    """The texts of ``users`` embedded by ``get_encoder()``; an encoder that cannot be created or loaded
    becomes the error saying how to encode new users without it (unless it already is that error)."""
    encoder: Encoder | None = None
    try:
        encoder = get_encoder()
        return text_bank(users, encoder)
    except (EncoderError, OSError, ImportError) as exc:
        if isinstance(encoder, (PrecomputedEncoder, UnavailableEncoder)):
            raise
        info = artifact.encoder
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        UnavailableEncoder(info.name, info.identity, info.dim, reason).encode([])
        raise  # pragma: no cover - encode above always raises


@single_threaded
def assign_codes(artifact: IndexArtifact, quantizer: Quantizer, fusion: UserFusion, new_ids: list[str],
                 make_bank: Callable[[], TextBank]) -> dict[str, list[int]]:
    """Codes of users not in the index, from their texts or vectors (``make_bank``), fused without an
    ID embedding (they have none) and moved to free codes."""
    x = fusion.pooled_text_only(make_bank())
    set_eval(quantizer)
    with torch.no_grad():
        raw = quantizer.encode(x)
        levels = raw.shape[1]
        dist = quantizer.code_distances(x, levels - 1, raw[:, : levels - 1])
    taken = {tuple(code) for code in artifact.codes.values()}
    extra = artifact.extra_level
    extra_shape = (extra.codebook_size or 2, extra.levels) if extra.used else None
    out: dict[str, list[int]] = {}
    for i, uid in enumerate(new_ids):
        prefix = [int(c) for c in raw[i, : levels - 1]]
        code = free_code(prefix, dist[i], taken, extra_shape)
        if code is None:
            raise IndexerError(f"no free code left for new user {uid!r} under prefix {prefix}")
        taken.add(tuple(code))
        out[uid] = code
    return out


def free_code(
    prefix: list[int],
    distances: torch.Tensor,
    taken: set[tuple[int, ...]],
    extra_shape: tuple[int, int] | None,
) -> list[int] | None:
    """Nearest free last-level code after ``prefix``; with extra levels ``(K, e)``, the first free slot
    (base-K digits) under it."""
    for last in torch.argsort(distances).tolist():
        base = [*prefix, int(last)]
        if extra_shape is None:
            if tuple(base) not in taken:
                return base
            continue
        slot = _free_slot(base, taken, *extra_shape)
        if slot is not None:
            return slot
    return None


def _free_slot(base: list[int], taken: set[tuple[int, ...]], k: int, n_digits: int) -> list[int] | None:
    """The first code ``base + digits`` (``n_digits`` base-``k`` digits, most significant first) not taken."""
    for slot in range(k**n_digits):
        digits = [(slot // k**p) % k for p in range(n_digits - 1, -1, -1)]
        if (*base, *digits) not in taken:
            return [*base, *digits]
    return None


def known_or_assigned(ids: Sequence[str], artifact: IndexArtifact,
                      assigned: dict[str, list[int]]) -> list[list[int]]:
    """Each id's stored code when indexed, else its code in ``assigned``."""
    return [list(artifact.codes[uid]) if uid in artifact.codes else assigned[uid] for uid in ids]
