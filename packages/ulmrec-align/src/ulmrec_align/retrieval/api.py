"""Train a retriever into a run folder, load it back, and write candidates and metrics.

A run folder holds::

    checkpoint.safetensors / .json   resumable training state (see retrieval.checkpoint)
    model.safetensors                the selected (best validation) weights
    config.json                      RetrieverConfig, n_items, the dataset's identity, the training summary
    candidates.jsonl                 top-N candidates per user for the validation and test splits
    metrics.json                     the retriever's own full-ranking metrics per split (ulmrec_eval)
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.base import SequenceModel, SequenceRetriever
from ulmrec_align.retrieval.candidates import SplitResult, evaluate_split, write_candidates
from ulmrec_align.retrieval.checkpoint import unreadable_reason
from ulmrec_align.retrieval.config import RETRIEVER_SCHEMA_VERSION, CandidateConfig, RetrieverConfig
from ulmrec_align.retrieval.data import eval_inputs, train_windows
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.lru import LRURec, count_parameters
from ulmrec_align.retrieval.sasrec import SASRec
from ulmrec_align.retrieval.trainer import CHECKPOINT_NAME, RetrieverProgress, RetrieverTrainer
from ulmrec_eval.runtime.artifacts import atomic_update, folder_lock
from ulmrec_eval.runtime.io import atomic_path, atomic_write_json, validation_message
from ulmrec_index.encoders import check_device

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CANDIDATES_FILE = "candidates.jsonl"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class RetrieverRun:
    """What :func:`train_retriever` produced."""

    out_dir: Path
    progress: RetrieverProgress
    metrics: dict[str, Any]


def _dataset_identity(dataset: PreparedDataset) -> dict[str, Any]:
    return {"name": dataset.manifest.name, "split_sha256": dataset.manifest.split_sha256,
            "n_users": dataset.n_users, "n_items": dataset.n_items,
            "path": str(dataset.path) if dataset.path is not None else None}


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (initialisation and dropout draw from torch's global generator)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(n_items: int, config: RetrieverConfig) -> SequenceModel:
    """A freshly initialised model for ``config`` (call :func:`seed_everything` first for determinism)."""
    if config.model.kind == "sasrec":
        return SASRec(n_items=n_items, config=config.model)
    return LRURec(n_items=n_items, config=config.model)


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
    identity = {k: v for k, v in _dataset_identity(dataset).items() if k != "path"}
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


def save_model(out_dir: Path, model: SequenceModel, config: RetrieverConfig, dataset: PreparedDataset, *,
               training: dict[str, Any] | None = None) -> None:
    """Write ``model.safetensors`` and ``config.json`` atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "ulmrec-retriever", "kind": config.model.kind})
    atomic_write_json(out_dir / CONFIG_FILE, {
        "schema_version": RETRIEVER_SCHEMA_VERSION, "kind": config.model.kind, "n_items": model.n_items,
        "config": config.model_dump(mode="json"), "dataset": _dataset_identity(dataset),
        "training": {k: v for k, v in (training or {}).items() if k != "history"},
    })


def load_retriever(model_dir: str | Path, *, device: str = "cpu") -> tuple[SequenceRetriever, RetrieverConfig,
                                                                              dict[str, Any]]:
    """Load ``model.safetensors`` + ``config.json``: ``(retriever, config, saved config.json)``."""
    folder = Path(model_dir)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file() or not (folder / MODEL_FILE).is_file():
        raise RetrieverError(f"not a retriever folder (needs {CONFIG_FILE} and {MODEL_FILE}); run "
                             "`ulmrec retrieve train` first", path=folder)
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RetrieverError(f"malformed JSON ({exc.msg})", path=config_path, line=exc.lineno) from None
    kind = saved.get("kind")
    if saved.get("schema_version") != RETRIEVER_SCHEMA_VERSION or kind not in ("lrurec", "sasrec"):
        raise RetrieverError(f"unsupported retriever (kind {saved.get('kind')!r}, schema_version "
                             f"{saved.get('schema_version')!r})", path=config_path)
    try:
        config = RetrieverConfig.model_validate(saved["config"])
        n_items = int(saved["n_items"])
    except KeyError as exc:
        raise RetrieverError(f"missing field {exc}", path=config_path) from None
    except ValidationError as exc:
        raise RetrieverError(validation_message(RetrieverConfig, exc), path=config_path) from None
    except (TypeError, ValueError):
        raise RetrieverError(f"n_items must be an integer, got {saved['n_items']!r}",
                             path=config_path) from None
    model = build_model(n_items, config)
    weights_path = folder / MODEL_FILE
    try:
        weights = load_file(str(weights_path))
    except Exception as exc:  # safetensors' SafetensorError (truncated, not safetensors), OSError
        raise RetrieverError(f"unreadable weights ({unreadable_reason(exc)})", path=weights_path) from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RetrieverError(f"weights do not fit the saved config ({first})", path=weights_path) from None
    model.to(device).eval()
    return SequenceRetriever(model=model, device=device), config, saved


def check_dataset(saved: dict[str, Any], dataset: PreparedDataset, where: Path) -> None:
    """The saved model must have been trained on this very split (same item count and split hash)."""
    identity = saved.get("dataset", {})
    wanted = dataset.manifest.split_sha256
    if identity.get("n_items") != dataset.n_items or identity.get("split_sha256") != wanted:
        raise RetrieverError(f"the model was trained on another dataset ({identity.get('name')!r}, "
                             f"{identity.get('n_items')} items, split "
                             f"{str(identity.get('split_sha256'))[:12]}…) "
                             f"than {dataset.manifest.name!r} ({dataset.n_items} items, split "
                             f"{dataset.manifest.split_sha256[:12]}…)", path=where)


def split_report(result: SplitResult, ks: tuple[int, ...]) -> dict[str, Any]:
    """The metrics.json entry of one split."""
    report: dict[str, Any] = {"users": len(result.inputs), "metrics": result.metrics(ks)}
    if result.top_items is not None:
        report["target_in_candidates"] = result.target_in_top()
    return report


def write_evaluation(dataset: PreparedDataset, retriever: SequenceRetriever, out_dir: Path,
                     config: CandidateConfig, *,
                     eval_batch_size: int, training: dict[str, Any] | None = None,
                     candidates: bool = True) -> dict[str, Any]:
    """Evaluate the configured splits; write ``metrics.json`` (and ``candidates.jsonl``) into ``out_dir``."""
    started = time.monotonic()
    results = [evaluate_split(retriever, eval_inputs(dataset.splits, split, max_len=retriever.config.max_len),
                              batch_size=eval_batch_size, mask_history=config.mask_history,
                              pool_size=config.pool_size if candidates else None)
               for split in config.splits]
    metrics: dict[str, Any] = {
        "schema_version": RETRIEVER_SCHEMA_VERSION, "kind": "retriever-metrics", "model": retriever.kind,
        "scope": "full", "ties": "pessimistic", "mask_history": config.mask_history,
        "pool_size": config.pool_size, "ks": list(config.metric_ks), "dataset": _dataset_identity(dataset),
    }
    for result in results:
        metrics[result.inputs.split] = split_report(result, config.metric_ks)
    metrics["eval_seconds"] = round(time.monotonic() - started, 3)
    if training is not None:
        metrics["training"] = training
    out_dir.mkdir(parents=True, exist_ok=True)
    if candidates:
        write_candidates(out_dir / CANDIDATES_FILE, results, dataset, config)
    atomic_write_json(out_dir / METRICS_FILE, metrics)
    return metrics


def evaluate_retriever(dataset: PreparedDataset, model_dir: str | Path, *, out_dir: str | Path | None = None,
                       device: str = "cpu", candidates: bool = False,
                       candidate_config: CandidateConfig | None = None,
                       pool_size: int | None = None) -> dict[str, Any]:
    """Recompute metrics (and candidates) of a saved model into ``out_dir`` (default: the model's).

    ``candidate_config`` defaults to the model's; ``pool_size`` overrides its pool size.
    """
    check_device(device)
    retriever, config, saved = load_retriever(model_dir, device=device)
    candidate_config = candidate_config or config.candidates
    if pool_size is not None:
        try:
            candidate_config = CandidateConfig.model_validate(
                {**candidate_config.model_dump(), "pool_size": pool_size})
        except ValidationError as exc:
            raise RetrieverError(f"--pool-size {pool_size}: {exc.errors()[0]['msg']}") from None
    check_dataset(saved, dataset, Path(model_dir) / CONFIG_FILE)
    out = Path(out_dir) if out_dir is not None else Path(model_dir)
    training = None
    previous = out / METRICS_FILE
    if previous.is_file():
        try:
            training = json.loads(previous.read_text(encoding="utf-8")).get("training")
        except json.JSONDecodeError:
            training = None
    with atomic_update(out) as tmp:  # metrics (and candidates) replace the old ones together
        return write_evaluation(dataset, retriever, tmp, candidate_config,
                                eval_batch_size=config.train.eval_batch_size, training=training,
                                candidates=candidates)

