"""Step 6 of the fit: the :class:`~ulmrec_index.report.IndexReport` of a built index (code usage,
collisions before and after the repair, reconstruction error, agreement with a reference index), and
:func:`read_reference`, which reads that reference."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ulmrec_eval.runtime.errors import InputError
from ulmrec_index.artifact import read_json
from ulmrec_index.config import IndexerConfig
from ulmrec_index.fusion import FusionMode, TextBank
from ulmrec_index.quantizers.base import Quantizer
from ulmrec_index.repair import DistinctCodes
from ulmrec_index.report import IndexReport, Repair, code_stats, count_collisions, reference_stats
from ulmrec_index.training import Fitted
from ulmrec_index.uniqueness import UniqueResult


def fit_report(cfg: IndexerConfig, bank: TextBank, fitted: Fitted, codes: DistinctCodes, sizes: list[int], *,
               ids: list[str], n_no_text: int, enc_stats: Any, fusion: FusionMode,
               reference: Mapping[str, Any] | None) -> IndexReport:
    """The report of the index whose users are ``ids`` (``fusion``: the mode asked; ``sizes``: the codebook
    size of every level of the distinct codes; ``enc_stats``: the encoder's ``last_stats`` or None)."""
    levels, k = codes.raw.shape[1], cfg.quantizer.codebook_size
    mse, rel = _reconstruction(fitted.quantizer, codes.fused, codes.final[:, :levels])
    text = bank.means().numpy()
    raw_np = codes.raw.to(torch.int64).cpu().numpy()
    effective = fitted.effective
    report = IndexReport(
        n_users=len(ids),
        n_users_without_text=n_no_text,
        n_texts=int(bank.embeddings.shape[0]),
        n_texts_truncated=enc_stats.n_truncated if enc_stats else 0,
        n_texts_encoded=enc_stats.n_encoded if enc_stats else 0,
        fusion=effective if effective == fusion else f"{fusion} (ran as {effective})",
        quantizer=f"{cfg.quantizer.kind} {levels}x{k}",
        ours=code_stats(codes.final, sizes, text),
        before_repair=code_stats(raw_np, [k] * levels, text),
        repair=_repair(raw_np, codes.final, codes.unique),
        reconstruction_mse=mse,
        reconstruction_rel=rel,
        notes=fitted.notes,
    )
    if reference is not None:
        report.reference, report.reference_users_matched = reference_stats(reference, ids, text)
    return report


def _reconstruction(quantizer: Quantizer, x: torch.Tensor, codes: np.ndarray) -> tuple[float, float]:
    """``mean_u ||x_u - decode(code_u)||^2`` and that divided by ``mean_u ||x_u - mean(x)||^2`` (0 when the
    users do not spread)."""
    with torch.no_grad():
        recon = quantizer.decode(torch.from_numpy(codes))
    err = ((x - recon) ** 2).sum(1)
    spread = ((x - x.mean(0)) ** 2).sum(1).mean()
    return float(err.mean()), float(err.mean() / spread) if float(spread) > 0 else 0.0


def _repair(raw: np.ndarray, final: np.ndarray, unique: UniqueResult) -> Repair:
    """Collisions before and after the repair, and what the repair moved."""
    return Repair(
        collisions_before=count_collisions(raw),
        collisions_after=count_collisions(final),
        n_collided_before=int(unique.n_collided_before),
        n_reassigned=int(unique.n_reassigned),
        n_extra_level=int(unique.n_extra_level),
        extra_level_used=bool(unique.extra_level_used),
    )


def read_reference(path: str | Path) -> dict[str, Any]:
    """Read a reference index JSON (``{"levels", "codebook_size", "codes": {user_id: [int, …]}}``)."""
    file = Path(path)
    data = read_json(file)
    codes = data.get("codes") if isinstance(data, dict) else None
    if not isinstance(codes, dict) or not codes:
        raise InputError("reference index needs a non-empty 'codes' object {user_id: [int, ...]}", path=file)
    lengths = {len(c) for c in codes.values() if isinstance(c, list)}
    if len(lengths) != 1 or not all(
        isinstance(c, list) and all(isinstance(v, int) for v in c) for c in codes.values()
    ):
        raise InputError("reference codes must be lists of integers of one length", path=file)
    return data
