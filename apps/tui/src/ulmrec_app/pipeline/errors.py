"""The pipeline's one error type: shown by ``ulmrec run`` as one line (file, key, what is allowed)."""

from __future__ import annotations

from ulmrec_eval.runtime.errors import UlmrecError


class PipelineError(UlmrecError):
    """A bad run config, a missing input, a locked run or a failed stage."""
