"""Optimizer, scheduler and RNG state of a checkpoint as safetensors + JSON (never pickle).

``Trainer`` writes ``optimizer.pt``, ``scheduler.pt`` and ``rng_state*.pth`` with ``torch.save`` (pickle);
:class:`~ulmrec_align.tuning.checkpoints.SafeTrainer` writes these instead:

* ``optimizer.safetensors`` — every tensor of ``optimizer.state_dict()["state"]`` as ``optim.<param>.<key>``;
  the param groups and non-tensor state (e.g. a float ``step``) as JSON in the header's metadata;
* ``scheduler.json`` — ``lr_scheduler.state_dict()`` (plain numbers and lists);
* ``rng_state.safetensors`` (``rng_state_<rank>.safetensors`` with several processes) — the torch CPU and
  CUDA generator states and numpy's key as tensors, Python's and numpy's other fields as JSON metadata.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ulmrec_align.retrieval.checkpoint import optimizer_from_flat, optimizer_to_flat
from ulmrec_eval.runtime.errors import InputError

OPTIMIZER_FILE = "optimizer.safetensors"
SCHEDULER_FILE = "scheduler.json"
_META_KEY = "ulmrec"


def rng_file(process_index: int, world_size: int) -> str:
    """``rng_state.safetensors``, or ``rng_state_<rank>.safetensors`` with several processes."""
    return "rng_state.safetensors" if world_size <= 1 else f"rng_state_{process_index}.safetensors"


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: Any) -> None:
    from safetensors.torch import save_file

    contiguous = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(contiguous, str(path), metadata={_META_KEY: json.dumps(meta)})


def _load(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], Any]:
    from safetensors import safe_open

    if not path.is_file():
        raise InputError("missing from the checkpoint", path=path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            meta = json.loads((handle.metadata() or {})[_META_KEY])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(f"unreadable checkpoint state ({exc})", path=path) from None
    return tensors, meta


def save_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """``optimizer.state_dict()`` into one safetensors file: its tensors as ``optim.<param>.<key>``, the
    rest as JSON metadata (the retriever's :func:`~ulmrec_align.retrieval.checkpoint.optimizer_to_flat`)."""
    tensors, meta = optimizer_to_flat(optimizer)
    _save(Path(path), tensors, meta)


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Load what :func:`save_optimizer` wrote into ``optimizer`` (state follows the parameters' device)."""
    tensors, meta = _load(Path(path))
    optimizer_from_flat(optimizer, tensors, meta)


def save_scheduler(scheduler: Any, path: str | Path) -> None:
    """``scheduler.state_dict()`` as JSON (refuses state that is not plain data)."""
    try:
        text = json.dumps(scheduler.state_dict(), indent=1)
    except TypeError as exc:
        raise TypeError(f"the learning-rate scheduler's state is not plain data ({exc})") from None
    Path(path).write_text(text + "\n", encoding="utf-8")


def load_scheduler_state(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    try:
        state: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable scheduler state ({exc})", path=file) from None
    return state


def save_rng_state(path: str | Path) -> None:
    """Python, numpy, torch CPU (and CUDA) generator states of this process."""
    version, internal, gauss = random.getstate()
    kind, key, pos, has_gauss, cached = np.random.get_state()
    numpy_key = np.asarray(key, dtype=np.uint32).view(np.int32).copy()  # safetensors: signed ints
    tensors = {"torch_cpu": torch.random.get_rng_state(), "numpy_key": torch.from_numpy(numpy_key)}
    if torch.cuda.is_available():
        for i, value in enumerate(torch.cuda.random.get_rng_state_all()):
            tensors[f"cuda.{i}"] = value
    meta = {"python": [version, list(internal), gauss],
            "numpy": [kind, int(pos), int(has_gauss), float(cached)],
            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    _save(Path(path), tensors, meta)


def load_rng_state(path: str | Path) -> None:
    """Restore what :func:`save_rng_state` wrote."""
    tensors, meta = _load(Path(path))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_key"].numpy().view(np.uint32), pos, has_gauss, cached))
    torch.random.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[f"cuda.{i}"] for i in range(int(meta.get("cuda_devices", 0))) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.random.set_rng_state_all(cuda)
