"""The shared runtime lives in ``ulmrec_eval.runtime``; the old module paths keep working for one release with
a DeprecationWarning, and give the same objects."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {"errors": "runtime.errors", "io": "runtime.io", "artifacts": "runtime.artifacts",
         "events": "runtime.events", "cli_runner": "runtime.cli", "writer": "predictions"}
NAMES = {"errors": "InputError", "io": "atomic_write_text", "artifacts": "atomic_dir", "events": "emit",
         "cli_runner": "run_app", "writer": "write_predictions"}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_paths_warn_and_forward(old: str) -> None:
    sys.modules.pop(f"ulmrec_eval.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"ulmrec_eval.{old} moved to ulmrec_eval.{MOVED[old]}"):
        module = importlib.import_module(f"ulmrec_eval.{old}")
    new = importlib.import_module(f"ulmrec_eval.{MOVED[old]}")
    assert getattr(module, NAMES[old]) is getattr(new, NAMES[old])
