"""Steps 2-6 of :meth:`ulmrec_index.indexer.UserIndexer.fit` on a bank of embedded users: fit
(:mod:`ulmrec_index.training`), encode and make distinct (:mod:`ulmrec_index.repair`), report
(:mod:`ulmrec_index.fit_report`), and the :class:`~ulmrec_index.artifact.IndexArtifact` of the result."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ulmrec_index import __version__
from ulmrec_index.artifact import EncoderInfo, ExtraLevelInfo, FusionInfo, IndexArtifact
from ulmrec_index.codes import default_token_format, validate_token_format
from ulmrec_index.config import IndexerConfig, IndexerError
from ulmrec_index.fit_report import fit_report
from ulmrec_index.fusion import FusionMode, TextBank, UserFusion
from ulmrec_index.quantizers.base import Quantizer
from ulmrec_index.repair import DistinctCodes, encode_distinct
from ulmrec_index.report import IndexReport
from ulmrec_index.training import Fitted, fit_quantizer

log = logging.getLogger(__name__)


@dataclass
class Built:
    """Everything a fit gives the indexer."""

    quantizer: Quantizer
    fusion: UserFusion
    report: IndexReport
    #: The fused vectors ``(N, D)`` the quantizer encoded.
    fused: torch.Tensor
    artifact: IndexArtifact


def build_index(cfg: IndexerConfig, ids: list[str], bank: TextBank, fusion: FusionMode, *,
                encoder_info: EncoderInfo, enc_stats: Any, reference: Mapping[str, Any] | None,
                timings: dict[str, float], start: float) -> Built:
    """Fit, encode, make codes distinct, report and artifact of the users of ``bank`` (row ``u`` is
    ``ids[u]``); ``timings`` (the embedding's already in) gets every step's seconds, ``total`` counted from
    ``start``."""
    n_no_text = int((bank.counts == 0).sum())
    if n_no_text:
        log.warning("%d of %d users have no text: indexed from the user-ID path alone", n_no_text,
                    len(ids))
    fitted = fit_quantizer(cfg, bank, fusion, timings, len(ids))
    codes = encode_distinct(fitted.quantizer, fitted.fusion, bank, fitted.epochs, timings)

    t = time.perf_counter()
    sizes = [cfg.quantizer.codebook_size] * codes.final.shape[1]
    token_format = token_formats(cfg, len(sizes))
    report = fit_report(cfg, bank, fitted, codes, sizes, ids=ids, n_no_text=n_no_text, enc_stats=enc_stats,
                        fusion=fusion, reference=reference)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    report.timings = timings
    artifact = make_artifact(cfg, ids, codes, sizes, token_format, encoder_info=encoder_info, fusion=fusion,
                             fitted=fitted)
    return Built(fitted.quantizer, fitted.fusion, report, codes.fused, artifact)


def token_formats(cfg: IndexerConfig, n_levels: int) -> list[str]:
    """The per-level token templates (``cfg.token_format`` or the default), at least ``n_levels`` of them."""
    token_format = (validate_token_format(cfg.token_format) if cfg.token_format
                    else default_token_format(n_levels))
    if len(token_format) < n_levels:
        raise IndexerError(f"token_format has {len(token_format)} levels; the codes have {n_levels}")
    return token_format


def make_artifact(cfg: IndexerConfig, ids: list[str], codes: DistinctCodes, sizes: list[int],
                  token_format: list[str], *, encoder_info: EncoderInfo, fusion: FusionMode,
                  fitted: Fitted) -> IndexArtifact:
    """The :class:`IndexArtifact` of the distinct codes and the settings that made them."""
    k = cfg.quantizer.codebook_size
    n_extra_levels = len(sizes) - codes.raw.shape[1]
    extra = ExtraLevelInfo()
    if n_extra_levels:
        extra = ExtraLevelInfo(used=True, levels=n_extra_levels, codebook_size=k,
                               n_users=int(codes.unique.n_extra_level))
    return IndexArtifact(
        package_version=__version__,
        quantizer_kind=cfg.quantizer.kind,
        quantizer_config=cfg.quantizer.model_dump(mode="json"),
        levels=len(sizes),
        codebook_sizes=sizes,
        token_format=token_format[: len(sizes)],
        encoder=encoder_info,
        fusion=FusionInfo(mode=fusion, effective=fitted.effective, id_dim=cfg.id_dim, attn_dim=cfg.attn_dim,
                          id_weight=cfg.id_weight, max_texts=cfg.max_texts, joint_epochs=fitted.epochs),
        extra_level=extra,
        seed=cfg.seed,
        codes={uid: [int(c) for c in row] for uid, row in zip(ids, codes.final, strict=True)},
    )
