"""Helpers shared by the pipeline and TUI tests: tiny run configs and the real `ulmrec` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support.cli import OFFLINE_ENV, run_ulmrec

BIN = Path(sys.executable).parent
ENV = {**os.environ, **OFFLINE_ENV}


def ulmrec(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the `ulmrec` command; returns the completed process (never raises on failure)."""
    return run_ulmrec(*args, cwd=cwd, timeout=timeout)


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tiny_config(folder: Path, name: str = "tiny", *, users: int = 40, extra: str = "",
                stages: str = '["data", "users"]') -> Path:
    """A run of synthetic data (+ users) that takes about a second per stage."""
    return write_config(folder / f"{name}.toml", f'name = "{name}"\nstages = {stages}\n'
                                                 f"[data.synthetic]\nusers = {users}\nitems = 30\n{extra}")


def manifest(run_dir: Path, stage: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((run_dir / stage / "stage.json").read_text())
    return data


def maybe_manifest(run_dir: Path, stage: str) -> dict[str, object]:
    """The manifest, or {} while it does not exist (a stage folder is emptied when the stage reruns)."""
    try:
        return manifest(run_dir, stage)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def wait_for(predicate: object, timeout: float = 60.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False
