"""Deprecated: moved to :mod:`ulmrec_eval.predictions`; this path goes in the next release."""

from __future__ import annotations

import warnings
from typing import Any

from ulmrec_eval import predictions as _moved

warnings.warn("ulmrec_eval.writer moved to ulmrec_eval.predictions; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
