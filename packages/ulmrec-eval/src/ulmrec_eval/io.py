"""Deprecated: moved to :mod:`ulmrec_eval.runtime.io`; this path goes in the next release."""

from __future__ import annotations

import warnings
from typing import Any

from ulmrec_eval.runtime import io as _moved

warnings.warn("ulmrec_eval.io moved to ulmrec_eval.runtime.io; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
