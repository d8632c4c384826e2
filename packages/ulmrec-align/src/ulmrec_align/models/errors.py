"""Errors of model resolution and loading that are the user's to fix (one line on the command line)."""

from __future__ import annotations

from ulmrec_eval.runtime.errors import InputError

#: The pip command that installs the optional training backends.
TRAIN_EXTRA = "pip install 'ulmrec-align[train]'"


class ModelError(InputError):
    """A model that cannot be found, converted or loaded, or a missing optional backend."""


def missing_extra(what: str, reason: str) -> ModelError:
    """The one error for a missing or unusable optional backend: names the extra that installs it."""
    return ModelError(f"{what} is not usable here ({reason}); install the training extra: {TRAIN_EXTRA}")
