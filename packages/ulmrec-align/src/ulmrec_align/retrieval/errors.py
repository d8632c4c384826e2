"""Errors of the retrieval stage that are the user's to fix (shown as one line by the CLI)."""

from __future__ import annotations

from ulmrec_eval.runtime.errors import InputError


class RetrieverError(InputError):
    """An inconsistent retriever artifact or run folder (wrong dataset, config mismatch, missing files)."""
