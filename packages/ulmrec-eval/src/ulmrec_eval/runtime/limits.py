"""Limits on options that multiply work or scale scores: past them a command runs for hours, fills the disk
or turns every score into ±inf. Each is refused in one line that names the option and its limit, by the
command and by the pipeline's plan of it (so that ``ulmrec run --dry-run`` refuses it too)."""

from __future__ import annotations

import math

from ulmrec_eval.runtime.errors import InputError

#: Samples per user of one alignment task (``align build --task-weight NAME=W``; 1 = one per user): above
#: it one task of a 100k-user dataset alone is more than 10M samples (``rating=1e9`` wrote 5.8 GB in 10 min).
MAX_TASK_WEIGHT = 100.0
#: Weight of the retriever's standardised score added to the LLM's (``align rank --fuse-retriever W``): far
#: past where the LLM's score still changes an order, far below where ``W × score`` overflows to ±inf.
MAX_FUSION_WEIGHT = 1e6


def check_limit(value: float, *, option: str, high: float, low: float = 0.0, why: str = "") -> float:
    """``value`` when it is a finite number in ``[low, high]``; else one :class:`InputError` line."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        reason = f" ({why})" if why else ""
        raise InputError(f"{option} must be a number from {low:g} to {high:g}{reason}, got {value!r}")
    return float(value)


def check_task_weight(name: str, weight: float) -> float:
    """A task's weight within ``[0, MAX_TASK_WEIGHT]``."""
    return check_limit(weight, option=f"--task-weight {name}", high=MAX_TASK_WEIGHT,
                       why="samples per user of that task; more only multiplies the build's time and size")


def check_fusion_weight(weight: float) -> float:
    """A fusion weight within ``[0, MAX_FUSION_WEIGHT]``."""
    return check_limit(weight, option="--fuse-retriever", high=MAX_FUSION_WEIGHT,
                       why="beyond it the retriever alone orders the candidates, and the scores overflow")
