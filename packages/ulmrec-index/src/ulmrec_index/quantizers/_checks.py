"""Input validation shared by every quantizer: one clear :class:`QuantizerError` per kind of bad input."""

from __future__ import annotations

import numpy as np
import torch

from ulmrec_index.quantizers.errors import QuantizerError


def as_tensor(x: object, what: str, shape: str) -> torch.Tensor:
    """``x`` as a torch tensor: tensors pass through, numpy arrays are converted (sharing memory)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise QuantizerError(f"{what} must be numeric, got a numpy array of dtype {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise QuantizerError(f"{what} must be a torch.Tensor or numpy array of shape {shape}, "
                         f"got {type(x).__name__}")


def check_vectors(x: object, *, dim: int | None = None, what: str = "x") -> torch.Tensor:
    """Return ``x`` (tensor or numpy array) as a contiguous float32 ``(N, D)`` tensor, or raise a clear error.

    Rejects other types, non-2-D shapes, ``N == 0``, ``D == 0``, a ``D`` different from ``dim`` and NaN/inf
    entries (naming the first bad row).
    """
    x = as_tensor(x, what, "(N, D)")
    if x.ndim != 2:
        raise QuantizerError(f"{what} must have shape (N, D), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise QuantizerError(f"{what} is empty: at least one vector is needed")
    if x.shape[1] == 0:
        raise QuantizerError(f"{what} has zero dimensions")
    if dim is not None and x.shape[1] != dim:
        raise QuantizerError(f"{what} has dimension {x.shape[1]}, but the quantizer was fitted on {dim}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()
        raise QuantizerError(
            f"{what} has NaN/inf values in {bad.numel()} row(s), first at row {int(bad[0])}"
        )
    return x.detach().to(torch.float32).contiguous()


def check_codes(codes: object, *, levels: int | None, codebook_size: int, what: str = "codes",
                allow_prefix: bool = False) -> torch.Tensor:
    """Return ``codes`` (a tensor or numpy array) as an int64 ``(N, l)`` tensor with values in ``[0, K)``;
    ``l == levels`` unless ``allow_prefix`` (then ``1 <= l <= levels``)."""
    codes = as_tensor(codes, what, "(N, L)")
    if codes.ndim != 2:
        raise QuantizerError(f"{what} must have shape (N, L), got {tuple(codes.shape)}")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise QuantizerError(f"{what} must be an integer tensor, got {codes.dtype}")
    n_levels = codes.shape[1]
    if levels is not None:
        ok = 1 <= n_levels <= levels if allow_prefix else n_levels == levels
        if not ok:
            want = f"1..{levels}" if allow_prefix else str(levels)
            raise QuantizerError(f"{what} has {n_levels} levels, expected {want}")
    codes = codes.to(torch.int64)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        raise QuantizerError(f"{what} must lie in [0, {codebook_size}), got [{int(codes.min())}, "
                             f"{int(codes.max())}]")
    return codes.contiguous()


def check_prefix(prefix: object, *, n: int, level: int, codebook_size: int) -> torch.Tensor:
    """Return ``prefix`` as an int64 ``(n, >=level)`` tensor: the codes of the levels before ``level``."""
    prefix = check_codes(prefix, levels=None, codebook_size=codebook_size, what="prefix")
    if prefix.shape[0] != n or prefix.shape[1] < level:
        raise QuantizerError(f"prefix must have shape ({n}, >={level}), got {tuple(prefix.shape)}")
    return prefix


def check_level(level: int, levels: int) -> None:
    """Raise unless ``0 <= level < levels``."""
    if not 0 <= level < levels:
        raise QuantizerError(f"level must be in [0, {levels}), got {level}")
