"""Deprecated: moved to :mod:`ulmrec_eval.runtime.events`; this path goes in the next release."""

from __future__ import annotations

import warnings
from typing import Any

from ulmrec_eval.runtime import events as _moved

warnings.warn("ulmrec_eval.events moved to ulmrec_eval.runtime.events; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
