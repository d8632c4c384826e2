"""Array inputs from other code: numpy arrays and torch tensors (no torch import).

* :func:`as_numpy` turns a torch tensor (any device, ``requires_grad`` or not, any float dtype including
  ``bfloat16``/``float16``, which numpy cannot hold and are widened to ``float32``) or anything array-like
  into a numpy array, so every metric runs on the vectorised array path whatever the caller holds.

``.npz`` prediction files are read and written by :mod:`ulmrec_eval.predictions`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_numpy", "dtype_kind", "id_kind", "is_tensor"]

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
