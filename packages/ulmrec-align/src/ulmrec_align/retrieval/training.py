"""Train a retriever into a run folder (resumable), then save the selected model and write its candidates
and metrics."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.base import SequenceRetriever
from ulmrec_align.retrieval.config import RetrieverConfig
from ulmrec_align.retrieval.data import eval_inputs, train_windows
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.evaluation import write_evaluation
from ulmrec_align.retrieval.lru import count_parameters
from ulmrec_align.retrieval.saved import build_model, dataset_identity, save_model
from ulmrec_align.retrieval.trainer import CHECKPOINT_NAME, RetrieverProgress, RetrieverTrainer
from ulmrec_eval.runtime.artifacts import atomic_update, folder_lock
from ulmrec_eval.runtime.devices import check_device


@dataclass(frozen=True)
class RetrieverRun:
    """What :func:`train_retriever` produced."""

    out_dir: Path
    progress: RetrieverProgress
    metrics: dict[str, Any]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (initialisation and dropout draw from torch's global generator)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_retriever(dataset: PreparedDataset, out_dir: str | Path, config: RetrieverConfig | None = None, *,
                    device: str = "cpu", resume: bool = False, force: bool = False,
                    show_progress: bool = True,
                    on_step: Callable[[RetrieverProgress], None] | None = None,
                    epoch_log: Callable[[str], None] | None = None,
                    write_outputs: bool = True) -> RetrieverRun:
    """Train (or resume) into ``out_dir``, then write the model, candidates and metrics.

    ``on_step`` is called at every step boundary (tests raise :class:`KeyboardInterrupt` from it to simulate
    Ctrl-C); ``epoch_log`` receives one line per epoch (default: printed with the progress bars). With
    ``resume`` the config and the dataset's split must match the checkpoint's (``epochs``, ``patience``, time
    budget may change). A non-empty ``out_dir`` needs ``resume`` or ``force`` (start anew: the old
    checkpoint is dropped, the old outputs stay until the new ones replace them).

    The folder is locked for the whole run (a second trainer is refused); the checkpoint is rewritten
    atomically at boundaries, and the outputs (model, config, candidates, metrics) replace the previous
    ones together (:func:`ulmrec_eval.runtime.artifacts.atomic_update`): a kill never mixes two runs' outputs.
    """
    config = config or RetrieverConfig()
    out = Path(out_dir)
    check_device(device)
    with folder_lock(out):
        _check_out(out, resume=resume, force=force)
        return _train(dataset, out, config, device=device, resume=resume, show_progress=show_progress,
                      on_step=on_step, epoch_log=epoch_log, write_outputs=write_outputs)


def _check_out(out: Path, *, resume: bool, force: bool) -> None:
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        hint = "--resume to continue it, " if (out / CHECKPOINT_NAME).is_file() else ""
        raise RetrieverError(f"{out} exists; pass {hint}--force to replace it, or choose another --out")
    for name in (CHECKPOINT_NAME, Path(CHECKPOINT_NAME).with_suffix(".json").name):
        (out / name).unlink(missing_ok=True)


def _train(dataset: PreparedDataset, out: Path, config: RetrieverConfig, *, device: str, resume: bool,
           show_progress: bool, on_step: Callable[[RetrieverProgress], None] | None,
           epoch_log: Callable[[str], None] | None, write_outputs: bool) -> RetrieverRun:
    if config.train.num_threads is not None:
        torch.set_num_threads(config.train.num_threads)
    seed_everything(config.train.seed)
    model = build_model(dataset.n_items, config)
    splits = dataset.splits
    windows = train_windows(splits, max_len=config.model.max_len, stride=config.train.window_stride)
    valid = eval_inputs(splits, "valid", max_len=config.model.max_len)
    identity = {k: v for k, v in dataset_identity(dataset).items() if k != "path"}
    trainer = RetrieverTrainer(model=model, config=config, windows=windows, valid=valid, out_dir=out,
                               device=device, show_progress=show_progress, epoch_log=epoch_log,
                               dataset=identity)
    progress = trainer.fit(resume=resume, on_step=on_step)
    model.load_state_dict(trainer.best_weights())
    summary = {
        "epochs_run": progress.epoch, "steps": progress.global_step, "best_epoch": progress.best_epoch,
        "best_valid": {config.train.best_metric: progress.best_score}, "stop_reason": progress.stop_reason,
        "seconds": round(progress.elapsed_seconds, 3),
        "seconds_per_epoch": round(progress.elapsed_seconds / max(progress.epoch, 1), 3),
        "train_windows": len(windows), "train_targets": windows.n_targets,
        "parameters": count_parameters(model), "device": device, "threads": torch.get_num_threads(),
        "history": progress.history,
    }
    metrics: dict[str, Any] = {}
    with atomic_update(out) as tmp:  # model, config, candidates and metrics appear together
        save_model(tmp, model, config, dataset, training=summary)
        if write_outputs:
            retriever = SequenceRetriever(model=model, device=device)
            metrics = write_evaluation(dataset, retriever, tmp, config.candidates,
                                       eval_batch_size=config.train.eval_batch_size, training=summary)
    return RetrieverRun(out_dir=out, progress=progress, metrics=metrics)
