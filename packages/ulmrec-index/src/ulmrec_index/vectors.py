"""Bring your own vectors: user ids and an ``(N, D)`` matrix from memory or files, checked once.

* :func:`as_user_id` / :func:`as_user_ids` — ids may be ``str`` or ``int`` (Python or numpy); an int is
  stored as its decimal string, so ``5`` and ``"5"`` name the same user.
* :func:`as_vectors` — a numpy array or torch tensor (any float dtype) as a finite float32 ``(N, D)`` tensor.
* :func:`read_vectors` — ``.npy`` (no pickle) or ``.safetensors`` (one tensor, or one named ``vectors`` /
  ``embeddings``); :func:`read_ids` — ``.npy``, ``.json`` (a list) or text with one id per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ulmrec_eval.runtime.errors import InputError

__all__ = ["as_user_id", "as_user_ids", "as_vectors", "read_ids", "read_vectors"]

_VECTOR_KEYS = ("vectors", "embeddings")


def as_user_id(value: object) -> str:
    """``value`` as a user id: a non-empty string, or an int written in decimal."""
    if isinstance(value, (str, np.str_)) and str(value):
        return str(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    raise InputError(f"a user id must be a non-empty str or an int, got {type(value).__name__} {value!r}")


def as_user_ids(values: Iterable[object] | np.ndarray | torch.Tensor) -> list[str]:
    """Ids of ``values`` (see :func:`as_user_id`); a repeated id or no id is an :class:`InputError`."""
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    elif isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise InputError(f"user ids must be 1-D, got shape {values.shape}")
        values = values.tolist()
    ids: list[str] = []
    seen: dict[str, int] = {}
    for position, value in enumerate(values):
        uid = as_user_id(value)
        if uid in seen:
            raise InputError(f"duplicated user_id {uid!r} (items {seen[uid]} and {position})")
        seen[uid] = position
        ids.append(uid)
    if not ids:
        raise InputError("no users to index")
    return ids


def as_vectors(values: Any, *, n: int | None = None, dim: int | None = None, what: str = "vectors"
               ) -> torch.Tensor:
    """``values`` (numpy or torch, any real dtype) as a finite float32 ``(N, D)`` tensor, checked against
    ``n`` rows and ``dim`` columns when given."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "biuf":
            raise InputError(f"{what} must be numbers, got dtype {values.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    elif isinstance(values, torch.Tensor):
        x = values.detach().to("cpu", torch.float32)
    else:
        raise InputError(f"{what} must be a numpy array or torch tensor of shape (N, D), "
                         f"got {type(values).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{what} must have shape (N, D) with N, D > 0, got {tuple(x.shape)}")
    if n is not None and x.shape[0] != n:
        raise InputError(f"{what} has {x.shape[0]} rows but there are {n} user ids")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{what} have dimension {x.shape[1]}, the index was built on {dim}")
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()
        raise InputError(f"{what} has NaN/inf in {bad.numel()} row(s), first at row {int(bad[0])}")
    return x.contiguous()


def read_vectors(path: str | Path) -> np.ndarray:
    """An ``(N, D)`` matrix from ``.npy`` or ``.safetensors``; other content is an :class:`InputError`."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no vectors file at {file}")
    if file.suffix == ".npy":
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"not a readable .npy array ({exc})", path=file) from None
    elif file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"not a readable safetensors file ({exc})", path=file) from None
        keys = [k for k in _VECTOR_KEYS if k in tensors] or (list(tensors) if len(tensors) == 1 else [])
        if not keys:
            raise InputError(f"holds tensors {sorted(tensors)}: expected one tensor, or one named "
                             f"{' or '.join(_VECTOR_KEYS)}", path=file)
        array = tensors[keys[0]]
    else:
        raise InputError("vectors must be a .npy or .safetensors file", path=file)
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise InputError(f"expected an (N, D) numeric array, got shape {array.shape} dtype {array.dtype}",
                         path=file)
    return array


def read_ids(path: str | Path) -> list[str]:
    """User ids, one per vector row: ``.npy`` (int or string array), ``.json`` (a list) or one per line."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no ids file at {file}")
    values: list[Any]
    if file.suffix == ".npy":
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"not a readable .npy array of ids ({exc})", path=file) from None
        if array.ndim != 1:
            raise InputError(f"ids must be 1-D, got shape {array.shape}", path=file)
        values = array.tolist()
    elif file.suffix == ".json":
        try:
            values = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"malformed JSON ({exc})", path=file) from None
        if not isinstance(values, list):
            raise InputError("expected a JSON list of ids", path=file)
    else:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid UTF-8 (byte {exc.start})", path=file) from None
        while lines and not lines[-1].strip():
            lines.pop()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise InputError("empty id (one id per line)", path=file, line=number)
        values = [line.strip() for line in lines]
    try:
        return as_user_ids(values)
    except InputError as exc:
        raise InputError(str(exc), path=file) from None
