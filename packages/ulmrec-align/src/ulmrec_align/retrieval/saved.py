"""A retriever's saved form: ``model.safetensors`` + ``config.json`` (the RetrieverConfig, n_items, the
dataset's identity, the training summary), and loading it back checked against the dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.base import SequenceModel, SequenceRetriever
from ulmrec_align.retrieval.checkpoint import unreadable_reason
from ulmrec_align.retrieval.config import RETRIEVER_SCHEMA_VERSION, RetrieverConfig
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.lru import LRURec
from ulmrec_align.retrieval.sasrec import SASRec
from ulmrec_eval.runtime.io import atomic_path, atomic_write_json, validation_message

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CANDIDATES_FILE = "candidates.jsonl"
METRICS_FILE = "metrics.json"


def dataset_identity(dataset: PreparedDataset) -> dict[str, Any]:
    return {"name": dataset.manifest.name, "split_sha256": dataset.manifest.split_sha256,
            "n_users": dataset.n_users, "n_items": dataset.n_items,
            "path": str(dataset.path) if dataset.path is not None else None}


def build_model(n_items: int, config: RetrieverConfig) -> SequenceModel:
    """A freshly initialised model for ``config`` (call :func:`seed_everything` first for determinism)."""
    if config.model.kind == "sasrec":
        return SASRec(n_items=n_items, config=config.model)
    return LRURec(n_items=n_items, config=config.model)


def save_model(out_dir: Path, model: SequenceModel, config: RetrieverConfig, dataset: PreparedDataset, *,
               training: dict[str, Any] | None = None) -> None:
    """Write ``model.safetensors`` and ``config.json`` atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "ulmrec-retriever", "kind": config.model.kind})
    atomic_write_json(out_dir / CONFIG_FILE, {
        "schema_version": RETRIEVER_SCHEMA_VERSION, "kind": config.model.kind, "n_items": model.n_items,
        "config": config.model_dump(mode="json"), "dataset": dataset_identity(dataset),
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
