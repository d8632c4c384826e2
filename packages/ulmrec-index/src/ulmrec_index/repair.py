"""Step 5 of the fit: encode the fused users, then repair collisions so that every user has a distinct code
(:func:`ulmrec_index.uniqueness.make_unique_for_quantizer`: next-best last-level codes, then an extra level
only where needed)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ulmrec_eval.runtime.events import emit
from ulmrec_index.fusion import TextBank, UserFusion
from ulmrec_index.quantizers.base import Quantizer
from ulmrec_index.training import set_eval
from ulmrec_index.uniqueness import UniqueResult, make_unique_for_quantizer


@dataclass
class DistinctCodes:
    """The fused users, the quantizer's codes and the distinct codes made of them."""

    #: The fused users ``(U, D)`` the quantizer encoded.
    fused: torch.Tensor
    #: The quantizer's codes ``(U, L)``, collisions included.
    raw: torch.Tensor
    #: The repair's result (distinct codes and its counts).
    unique: UniqueResult
    #: The distinct codes ``(U, L')`` as int64 (``L' > L`` where an extra level was needed).
    final: np.ndarray


def encode_distinct(quantizer: Quantizer, fusion: UserFusion, bank: TextBank, epochs: int,
                    timings: dict[str, float]) -> DistinctCodes:
    """Every user of ``bank`` fused, encoded and made distinct; adds ``encode`` and ``repair`` seconds to
    ``timings``. After ``epochs`` of joint training a quantizer offering ``calibrate`` settles on the final
    fused population first."""
    t = time.perf_counter()
    set_eval(quantizer)
    fusion.eval()
    x = fusion.fuse_all(bank)
    calibrate = getattr(quantizer, "calibrate", None)
    if epochs and callable(calibrate):
        # rqvae (or any quantizer offering it) settles on the final fused population after joint training:
        # codes left unused are re-seeded and the last level's Sinkhorn prices recomputed exactly.
        with torch.no_grad():
            calibrate(x)
    with torch.no_grad():
        raw = quantizer.encode(x)
    timings["encode"] = time.perf_counter() - t

    t = time.perf_counter()
    emit(message="making every code distinct")
    with torch.no_grad():
        unique = make_unique_for_quantizer(quantizer, x, raw)
    timings["repair"] = time.perf_counter() - t
    return DistinctCodes(x, raw, unique, unique.codes.to(torch.int64).cpu().numpy())
