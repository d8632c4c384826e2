"""The retriever's public API: train into a run folder (:mod:`.training`), load it back (:mod:`.saved`), and
write candidates and metrics (:mod:`.evaluation`).

A run folder holds::

    checkpoint.safetensors / .json   resumable training state (see retrieval.checkpoint)
    model.safetensors                the selected (best validation) weights
    config.json                      RetrieverConfig, n_items, the dataset's identity, the training summary
    candidates.jsonl                 top-N candidates per user for the validation and test splits
    metrics.json                     the retriever's own full-ranking metrics per split (ulmrec_eval)
"""

from __future__ import annotations

from ulmrec_align.retrieval.evaluation import evaluate_retriever, split_report, write_evaluation
from ulmrec_align.retrieval.saved import (
    CANDIDATES_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    build_model,
    check_dataset,
    load_retriever,
    save_model,
)
from ulmrec_align.retrieval.training import RetrieverRun, seed_everything, train_retriever

__all__ = ["CANDIDATES_FILE", "CONFIG_FILE", "METRICS_FILE", "MODEL_FILE", "RetrieverRun", "build_model",
           "check_dataset", "evaluate_retriever", "load_retriever", "save_model", "seed_everything",
           "split_report", "train_retriever", "write_evaluation"]
