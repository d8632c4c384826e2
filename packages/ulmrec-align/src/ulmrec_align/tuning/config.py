"""Settings of ``ulmrec align train`` and the manifest of its output folder (``T/train_manifest.json``).

The settings, the manifest and the folder's file names are defined in
:mod:`ulmrec_align.models.train_manifest` (below both tuning and ranking, which loads tuned folders); this
module re-exports them for ``align train`` and holds what only tuning uses.
"""

from __future__ import annotations

from ulmrec_align.models.train_manifest import (
    ADAPTER_DIR,
    TRAIN_MANIFEST,
    TRAIN_SCHEMA_VERSION,
    BaseModelInfo,
    CurvePoint,
    LoraSettings,
    TrainManifest,
    TrainSettings,
    ValidationPoint,
    read_train_manifest,
)

__all__ = ["ADAPTER_DIR", "BEST_PREFIX", "RANKING_TASKS", "TRAIN_MANIFEST", "TRAIN_SCHEMA_VERSION",
           "BaseModelInfo", "CurvePoint", "LoraSettings", "TrainManifest", "TrainSettings", "ValidationPoint",
           "read_train_manifest"]

#: ``T.partial/best-adapter-step-N``: the adapter of a best validation so far.
BEST_PREFIX = "best-adapter-step-"
#: Tasks whose validation samples are ranked for NDCG@10 (lettered candidates + a target letter).
RANKING_TASKS = ("next_item",)
