"""Array inputs from other code: numpy arrays, torch tensors and ``.npz`` prediction files (no torch import).

* :func:`as_numpy` turns a torch tensor (any device, ``requires_grad`` or not, any float dtype including
  ``bfloat16``/``float16``, which numpy cannot hold and are widened to ``float32``) or anything array-like
  into a numpy array, so every metric runs on the vectorised array path whatever the caller holds.
* :func:`read_prediction_arrays` reads a ``.npz`` predictions file (see :data:`NPZ_KEYS`) straight into ranks,
  without one Python object per user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ulmrec_eval.errors import InputError

__all__ = ["NPZ_KEYS", "PredictionArrays", "as_numpy", "id_kind", "is_tensor", "read_prediction_arrays"]

#: Arrays of a ``.npz`` predictions file: ``user_ids (U,)``, ``targets (U,)`` and either ``ranked (U, L)``
#: (item ids, best first) or ``candidates (U, L)`` + ``scores (U, L)``; optional ``history_lengths (U,)``
#: (-1 = unknown), 0-d string arrays ``source`` and ``split`` and a 0-d integer ``retrieved_n`` (the N of
#: the retrieved top-N a re-ranker's candidates came from). Ids are integers or unicode strings (no pickle).
NPZ_KEYS: tuple[str, ...] = ("user_ids", "targets", "ranked", "candidates", "scores", "history_lengths",
                             "source", "split", "retrieved_n")


def is_tensor(x: object) -> bool:
    """Whether ``x`` is a torch tensor (checked by type, so torch is never imported here)."""
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach") and hasattr(x, "numpy")


def as_numpy(x: Any, *, what: str = "input") -> Any:
    """``x`` as a numpy array when it is a tensor or an array; other objects (lists) are returned unchanged.

    Tensors are detached and moved to the CPU; half-precision floats become ``float32`` (exact).
    """
    if is_tensor(x):
        t = x.detach()
        if t.is_floating_point() and t.element_size() < 4:   # bfloat16 / float16 (/ float8): widen exactly
            t = t.float()
        try:
            return t.cpu().numpy()
        except (TypeError, RuntimeError) as exc:
            message = f"{what}: cannot convert a torch tensor of dtype {t.dtype} to numpy ({exc})"
            raise ValueError(message) from None
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        return np.asarray(x)
    return x


def id_kind(value: object) -> str:
    """``"int"`` for Python/numpy integers, ``"str"`` for strings, else the type's name (for id checks)."""
    if isinstance(value, (str, np.str_)):
        return "str"
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return "int"
    return type(value).__name__


def dtype_kind(dtype: np.dtype[Any]) -> str:
    """The id kind of an array's elements: ``"int"``, ``"str"`` or the dtype's name."""
    if np.issubdtype(dtype, np.integer):
        return "int"
    if dtype.kind in ("U", "S"):
        return "str"
    return str(dtype)


@dataclass
class PredictionArrays:
    """One prediction set as arrays: ``user_ids (U,)``, ``targets (U,)``, target ``ranks (U,)`` (0 = miss)."""

    user_ids: npt.NDArray[Any]
    targets: npt.NDArray[Any]
    ranks: npt.NDArray[np.int64]
    history_lengths: npt.NDArray[np.int64] | None = None
    source: str | None = None
    split: str | None = None
    retrieved_n: int | None = None


def _scalar_text(data: Any, key: str, path: Path) -> str | None:
    if key not in data.files:
        return None
    value = data[key]
    if value.ndim != 0 or value.dtype.kind not in ("U", "S"):
        raise InputError(f"'{key}' must be a 0-d string array, got shape {value.shape} dtype {value.dtype}",
                         path=path)
    return str(value.item() if value.dtype.kind == "U" else value.item().decode())


def read_prediction_arrays(path: str | Path) -> PredictionArrays:
    """Read a ``.npz`` predictions file (keys :data:`NPZ_KEYS`) and rank each target; errors name the file.

    Ranks come from ``candidates`` + ``scores`` when given (ties pessimistic), else from ``ranked``.
    """
    from ulmrec_eval.metrics import ranks_from_candidates, ranks_from_lists

    file = Path(path)
    try:
        data = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable .npz predictions file ({exc})", path=file) from None
    with data:
        unknown = sorted(set(data.files) - set(NPZ_KEYS))
        if unknown:
            raise InputError(f"unknown array(s) {unknown}; a predictions .npz holds {list(NPZ_KEYS)}",
                             path=file)
        for key in ("user_ids", "targets"):
            if key not in data.files:
                raise InputError(f"missing array '{key}' (a predictions .npz needs user_ids, targets and "
                                 "ranked or candidates + scores)", path=file)
        try:
            user_ids, targets = data["user_ids"], data["targets"]
        except ValueError as exc:  # object arrays would need pickle
            raise InputError(f"{exc}: write ids as integer or unicode-string arrays", path=file) from None
        n = user_ids.shape[0] if user_ids.ndim == 1 else -1
        if n <= 0 or targets.shape != (n,):
            raise InputError(f"user_ids and targets must be 1-D of one length > 0, got {user_ids.shape} and "
                             f"{targets.shape}", path=file)
        if len(np.unique(user_ids)) != n:
            raise InputError("user_ids repeat", path=file)
        has_scores = "scores" in data.files or "candidates" in data.files
        try:
            if has_scores:
                if not ("scores" in data.files and "candidates" in data.files):
                    raise InputError("'candidates' and 'scores' go together: give both or neither", path=file)
                cands, scores = data["candidates"], data["scores"]
                if cands.ndim != 2 or cands.shape[0] != n or scores.shape != cands.shape:
                    raise InputError(f"candidates and scores must both have shape ({n}, L), got "
                                     f"{cands.shape} and {scores.shape}", path=file)
                _check_id_kinds(cands.dtype, targets.dtype, "candidates", file)
                ranks = ranks_from_candidates(cands, scores.astype(np.float64, copy=False), targets)
            elif "ranked" in data.files:
                ranked = data["ranked"]
                if ranked.ndim != 2 or ranked.shape[0] != n:
                    raise InputError(f"ranked must have shape ({n}, L), got {ranked.shape}", path=file)
                _check_id_kinds(ranked.dtype, targets.dtype, "ranked", file)
                ranks = ranks_from_lists(ranked, targets)
            else:
                raise InputError("needs 'ranked' (U, L) or 'candidates' + 'scores' (U, L)", path=file)
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(str(exc), path=file) from None
        lengths = None
        if "history_lengths" in data.files:
            lengths = data["history_lengths"]
            if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
                raise InputError(f"history_lengths must be ({n},) integers, got {lengths.shape} "
                                 f"{lengths.dtype}", path=file)
            lengths = lengths.astype(np.int64)
        retrieved_n = None
        if "retrieved_n" in data.files:
            value = data["retrieved_n"]
            if value.ndim != 0 or not np.issubdtype(value.dtype, np.integer) or int(value) < 1:
                raise InputError(f"retrieved_n must be a 0-d integer >= 1, got shape {value.shape} "
                                 f"dtype {value.dtype}", path=file)
            retrieved_n = int(value)
        return PredictionArrays(user_ids=user_ids, targets=targets, ranks=ranks, history_lengths=lengths,
                                source=_scalar_text(data, "source", file),
                                split=_scalar_text(data, "split", file), retrieved_n=retrieved_n)


def _check_id_kinds(items: np.dtype[Any], targets: np.dtype[Any], name: str, path: Path) -> None:
    a, b = dtype_kind(items), dtype_kind(targets)
    if a != b:
        raise InputError(f"targets are {b} but '{name}' holds {a} ids: the target could never be found",
                         path=path)
