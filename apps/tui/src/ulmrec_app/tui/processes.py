"""Launching and stopping stages from the TUI.

Actions go through the ``ulmrec`` command (``ulmrec run CONFIG --stage NAME --detach``), so a stage launched
from the TUI is the same detached process as one started from a shell; stopping sends SIGTERM to the stage's
process group (:func:`ulmrec_app.pipeline.runner.stop_stage`), which leaves it resumable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ulmrec_app.tui.run_views import RunView


def _ulmrec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ulmrec_app.main", *args], capture_output=True, text=True,
                          check=False, stdin=subprocess.DEVNULL, timeout=120)


def _result(done: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
    text = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
    return done.returncode == 0, (text[-1] if text else f"exit status {done.returncode}")


def launch(run: RunView, runs_dir: Path, stage: str | None = None, *,
           force: bool = False) -> tuple[bool, str]:
    """``ulmrec run CONFIG --stage STAGE --detach`` for this run; returns (ok, one line)."""
    if run.info is None:
        return False, f"{run.folder}/run.json is missing: start this run once with `ulmrec run CONFIG`"
    args = ["run", run.info.config, "--runs", str(runs_dir), "--detach"]
    if stage is not None:
        args.append(f"--stage={stage}")
    if force:
        args.append("--force")
    return _result(_ulmrec(*args))


def start_config(config: Path, runs_dir: Path) -> tuple[bool, str]:
    """Start every stage of ``config`` in the background."""
    return _result(_ulmrec("run", str(config), "--runs", str(runs_dir), "--detach"))


def stop(run: RunView, runs_dir: Path, stage: str) -> tuple[bool, str]:
    """``ulmrec run CONFIG --stop --stage STAGE``: the same command path as :func:`launch`."""
    row = run.stage(stage)
    if row is None or row.status != "running":
        return False, f"{stage} is not running"
    if run.info is None:
        return False, f"{run.folder}/run.json is missing: start this run once with `ulmrec run CONFIG`"
    return _result(_ulmrec("run", run.info.config, "--runs", str(runs_dir), "--stop", f"--stage={stage}"))
