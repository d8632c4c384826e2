"""Deprecated: moved to :mod:`ulmrec_eval.runtime.cli`; this path goes in the next release."""

from __future__ import annotations

import warnings
from typing import Any

from ulmrec_eval.runtime import cli as _moved

warnings.warn("ulmrec_eval.cli_runner moved to ulmrec_eval.runtime.cli; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
