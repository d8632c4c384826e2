"""Errors raised by quantizers, the registry, Sinkhorn and the uniqueness repair."""

from __future__ import annotations

from ulmrec_eval.runtime.errors import UlmrecError


class QuantizerError(UlmrecError, ValueError):
    """Bad quantizer input (NaN/inf, wrong shape, empty), unknown kind, or a missing optional backend."""


class NotFittedError(QuantizerError):
    """A quantizer was used (encode/decode/state) before ``fit`` or ``load_state_dict``."""
