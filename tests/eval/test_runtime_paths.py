"""The shared runtime lives in ``ulmrec_eval.runtime``; the old top-level module paths (deprecated for one
release) are gone, and the new homes hold the names they forwarded."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {"errors": "runtime.errors", "io": "runtime.io", "artifacts": "runtime.artifacts",
         "events": "runtime.events", "cli_runner": "runtime.cli", "writer": "predictions"}
NAMES = {"errors": "InputError", "io": "atomic_write_text", "artifacts": "atomic_dir", "events": "emit",
         "cli_runner": "run_app", "writer": "write_predictions"}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_paths_are_gone_and_the_new_ones_hold_the_names(old: str) -> None:
    sys.modules.pop(f"ulmrec_eval.{old}", None)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"ulmrec_eval.{old}")
    new = importlib.import_module(f"ulmrec_eval.{MOVED[old]}")
    assert callable(getattr(new, NAMES[old]))
