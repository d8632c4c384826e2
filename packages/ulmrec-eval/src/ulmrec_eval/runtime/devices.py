"""The one rule for a ``--device`` value, shared by every command that runs torch (``index build``, the
retriever's commands, ``align train``/``rank``).

Accepted: ``cpu``; ``cuda`` or ``cuda:N`` where torch sees a CUDA device (and N is below its device count);
``mps`` where torch reports the Apple MPS backend available. Anything else (a bogus name, another torch device
type such as ``xla`` or ``meta``, a GPU this torch cannot use) is refused in one line before any work starts.

torch is imported inside :func:`check_device` only: ``ulmrec_eval`` itself does not depend on torch.
"""

from __future__ import annotations

from collections.abc import Callable

from ulmrec_eval.runtime.errors import InputError


class DeviceError(InputError):
    """A ``--device`` torch cannot use here (one line on the command line)."""


def check_device(device: str, *, error: Callable[[str], Exception] = DeviceError) -> str:
    """``device`` if torch can use it, else ``error(message)`` raised with a one-line message.

    ``error`` lets a package keep its own error type (``EncoderError``, ``ModelError``); the rule and the
    messages are the same everywhere.
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise error(f"--device {device!r} is not a device (use cpu, cuda, cuda:N or mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise error(f"--device {device}: this torch has no usable CUDA GPU; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise error(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif parsed.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise error(f"--device {device}: MPS is not available here; use --device cpu")
    elif parsed.type != "cpu":
        raise error(f"--device {device}: device type {parsed.type!r} is not supported (use cpu, cuda or mps)")
    return device
