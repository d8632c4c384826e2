"""Pickle-free training checkpoints: one safetensors file with every tensor, and the rest as JSON inside it.

Layout of ``checkpoint.safetensors`` (written atomically, so a kill never leaves half a checkpoint)::

    model.<name>          current weights
    best.<name>           weights of the best validation so far (absent before the first validation)
    optim.<i>.<key>       optimizer state tensors of parameter i (AdamW: step, exp_avg, exp_avg_sq)
    rng.torch             torch.get_rng_state() (uint8), the generator dropout draws from
    rng.cuda              torch.cuda.get_rng_state() where CUDA is used

and the safetensors metadata entry ``"state"`` holds JSON: ``schema_version``, the optimizer's param_groups
and non-tensor state, and the trainer's progress (epoch, step in epoch, best metric, early-stopping counter,
history). A copy of that JSON is also written to ``checkpoint.json`` for people to read; the safetensors file
is the authoritative one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_eval.runtime.io import atomic_path, atomic_write_json

CHECKPOINT_FORMAT = "ulmrec-retriever-checkpoint"
CHECKPOINT_SCHEMA_VERSION = 1


def unreadable_reason(exc: BaseException) -> str:
    """First line of a safetensors/OS error, e.g. ``truncated or not safetensors: …``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"truncated or not safetensors: {text}"


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``optim.<i>.<key>``) and a JSON-able remainder."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {"param_groups": state["param_groups"], "scalars": scalars}
    return tensors, meta


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_to_flat`: load the state back into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    best_state: dict[str, torch.Tensor] | None, progress: dict[str, Any]) -> None:
    """Write the checkpoint atomically (see the module doc for the layout)."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v.detach().cpu().contiguous().clone()
                                        for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous().clone() for k, v in best_state.items()})
    optim_tensors, optim_meta = optimizer_to_flat(optimizer)
    tensors.update(optim_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    state = {"format": CHECKPOINT_FORMAT, "schema_version": CHECKPOINT_SCHEMA_VERSION,
             "optimizer": optim_meta, "progress": progress}
    text = json.dumps(state)
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"format": CHECKPOINT_FORMAT, "state": text})
    atomic_write_json(target.with_suffix(".json"), state)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint: ``(tensors, state)``; raises :class:`RetrieverError` if it is not one of ours."""
    file = Path(path)
    if not file.is_file():
        raise RetrieverError("no checkpoint to resume from", path=file)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != CHECKPOINT_FORMAT or "state" not in metadata:
                raise RetrieverError(f"not a retriever checkpoint (format {metadata.get('format')!r})",
                                     path=file)
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                tensors[key] = handle.get_tensor(key)
    except RetrieverError:
        raise
    except Exception as exc:  # safetensors' SafetensorError (truncated, not safetensors), OSError
        raise RetrieverError(f"unreadable checkpoint ({unreadable_reason(exc)}); start again without "
                             "--resume (--force)", path=file) from None
    try:
        state = json.loads(metadata["state"])
    except json.JSONDecodeError as exc:
        raise RetrieverError(f"corrupt checkpoint state (malformed JSON: {exc.msg})", path=file) from None
    if state.get("schema_version") != CHECKPOINT_SCHEMA_VERSION:
        raise RetrieverError(f"checkpoint schema_version {state.get('schema_version')} is not "
                         f"{CHECKPOINT_SCHEMA_VERSION}", path=file)
    return tensors, state


def restore(tensors: dict[str, torch.Tensor], state: dict[str, Any], *, model: torch.nn.Module,
            optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor] | None:
    """Load weights, optimizer and RNG state from a checkpoint; returns the best weights (if any)."""
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer_from_flat(optimizer, tensors, state["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
    return best or None
