"""Step 1 of the fit: users' texts -> a :class:`~ulmrec_index.fusion.TextBank` of their embeddings.

Also what the artifact records of the encoder (:func:`encoder_info`) and the one clear error an encoder that
cannot be loaded turns into (:func:`encode_texts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from ulmrec_index.artifact import EncoderInfo
from ulmrec_index.encoders import (
    PRECOMPUTED,
    Encoder,
    PrecomputedEncoder,
    TextEncoder,
    unavailable_encoder_error,
)
from ulmrec_index.fusion import TextBank
from ulmrec_index.users import UserText, check_unique_ids
from ulmrec_index.vectors import as_vectors


def as_users(users: Iterable[UserText | Mapping[str, Any]]) -> list[UserText]:
    """``users`` as :class:`UserText` (dicts validated), refusing a repeated user id."""
    return check_unique_ids(u if isinstance(u, UserText) else UserText.model_validate(u) for u in users)


def text_bank(users: Sequence[UserText], encoder: Encoder) -> TextBank:
    """Every text of ``users`` embedded by ``encoder``, row ``u`` of the bank being ``users[u]``."""
    flat = [text for user in users for text in user.texts]
    counts = torch.tensor([len(user.texts) for user in users], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    if not flat:
        return TextBank(torch.zeros(0, encoder.dim), offsets)
    vectors = encode_texts(encoder, flat)
    what = f"encoder {encoder_name(encoder)!r} output"
    return TextBank(as_vectors(vectors, n=len(flat), what=what), offsets)


def encoder_name(encoder: Encoder) -> str:
    """The encoder's ``name``, else its class name."""
    return str(getattr(encoder, "name", type(encoder).__name__))


def encode_texts(encoder: Encoder, texts: list[str]) -> Any:
    """``encoder.encode(texts)``; a model that cannot be loaded (a hub name offline, a missing package or
    folder) becomes one :class:`~ulmrec_index.encoders.EncoderError` saying how to encode without it."""
    try:
        return encoder.encode(texts)
    except (OSError, ImportError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        name = encoder_name(encoder)
        raise unavailable_encoder_error(name, encoder.identity, encoder.dim, reason) from exc


def encoder_info(encoder: Encoder, dim: int) -> EncoderInfo:
    """What the artifact records of ``encoder`` (its kind decides what
    :meth:`ulmrec_index.indexer.UserIndexer.load` rebuilds)."""
    kind = ("sentence-transformers" if isinstance(encoder, TextEncoder)
            else PRECOMPUTED if isinstance(encoder, PrecomputedEncoder) else "custom")
    length = getattr(encoder, "max_seq_length", None) if kind != PRECOMPUTED else None
    return EncoderInfo(kind=kind, name=encoder_name(encoder), identity=encoder.identity, dim=dim,
                       max_seq_length=length if isinstance(length, int) else None)
