"""Save and load a fitted index folder (layout: :mod:`ulmrec_index.artifact`).

:func:`save_index` writes the folder whole or not at all; :func:`read_settings` and :func:`load_modules` are
the two halves of :meth:`ulmrec_index.indexer.UserIndexer.load` (the config and encoder the indexer is
created with, then its fitted quantizer and fusion).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from ulmrec_eval.runtime.artifacts import atomic_dir
from ulmrec_eval.runtime.io import atomic_write_json, atomic_write_jsonl
from ulmrec_index.artifact import (
    FUSION_FILE,
    INDEX_FILE,
    QUANTIZER_FILE,
    REPORT_FILE,
    TEXTS_FILE,
    IndexArtifact,
    load_index,
)
from ulmrec_index.config import IndexerConfig, IndexerError
from ulmrec_index.encoders import PRECOMPUTED, Encoder, PrecomputedEncoder, UnavailableEncoder
from ulmrec_index.fusion import UserFusion
from ulmrec_index.quantizers.base import Quantizer
from ulmrec_index.quantizers.registry import create_quantizer, parse_quantizer_config
from ulmrec_index.report import IndexReport
from ulmrec_index.training import set_eval
from ulmrec_index.users import UserText


def save_index(folder: str | Path, *, artifact: IndexArtifact, quantizer: Quantizer, fusion: UserFusion,
               users: Sequence[UserText], report: IndexReport | None, force: bool = False) -> Path:
    """Write the index folder whole or not at all.

    The files are written into a sibling temporary folder that then replaces ``folder``
    (:func:`ulmrec_eval.runtime.artifacts.atomic_dir`, under a lock); a non-empty ``folder`` needs
    ``force``. ``texts.jsonl`` is written when there are ``users``, ``report.json`` when there is a report.
    """
    out = Path(folder)
    with atomic_dir(out, force=force) as tmp:
        for module, file in ((quantizer, QUANTIZER_FILE), (fusion, FUSION_FILE)):
            state = {key: t.detach().cpu().contiguous().clone() for key, t in module.state_dict().items()}
            meta: dict[str, str] | None = {"mode": fusion.mode} if module is fusion else None
            save_file(state, str(tmp / file), metadata=meta)
        if users:
            atomic_write_jsonl(tmp / TEXTS_FILE, users)
        if report is not None:
            atomic_write_json(tmp / REPORT_FILE, report.model_dump(mode="json"))
        atomic_write_json(tmp / INDEX_FILE, artifact.model_dump(mode="json"))
    return out


def read_settings(path: Path, encoder: Encoder | None,
                  overrides: dict[str, Any]) -> tuple[IndexArtifact, IndexerConfig, Encoder | None]:
    """The saved artifact, the config that made it (with ``overrides``) and the encoder to use: the one
    given (its identity and dim must match the index's), else for a vector or custom-encoder index the
    stand-in that encodes nothing or says why (None: sentence-transformers, re-created on first use)."""
    artifact = load_index(path)
    saved = artifact.encoder
    if encoder is not None and (encoder.identity != saved.identity or encoder.dim != saved.dim):
        raise IndexerError(f"encoder identity {encoder.identity!r} (D={encoder.dim}) differs from the "
                           f"index's {saved.identity!r} (D={saved.dim}): its codes would not match")
    info = artifact.fusion
    config = IndexerConfig(
        quantizer=parse_quantizer_config(artifact.quantizer_config),
        encoder=artifact.encoder.name,
        fusion=info.mode,
        id_weight=info.id_weight,
        id_dim=info.id_dim,
        attn_dim=info.attn_dim,
        max_texts=info.max_texts,
        token_format=artifact.token_format,
        seed=artifact.seed,
        **overrides,
    )
    if encoder is None and saved.kind == PRECOMPUTED:
        encoder = PrecomputedEncoder(saved.dim, saved.identity)
    elif encoder is None and saved.kind == "custom":
        encoder = UnavailableEncoder(saved.name, saved.identity, saved.dim,
                                     "a custom encoder object, of which only the identity is saved")
    return artifact, config, encoder


def load_modules(path: Path, artifact: IndexArtifact, config: IndexerConfig) -> tuple[Quantizer, UserFusion]:
    """The fitted quantizer and fusion saved in ``path``, in eval mode."""
    quantizer = create_quantizer(config.quantizer)
    quantizer.load_state_dict(load_file(str(path / QUANTIZER_FILE)))
    set_eval(quantizer)
    info = artifact.fusion
    fusion = UserFusion(
        mode=info.effective,
        num_users=len(artifact.codes),
        text_dim=artifact.encoder.dim,
        id_dim=info.id_dim,
        attn_dim=info.attn_dim,
        id_weight=info.id_weight,
        max_texts=info.max_texts,
        seed=artifact.seed,
    )
    fusion.load_state_dict(load_file(str(path / FUSION_FILE)))
    fusion.eval()
    return quantizer, fusion
