"""The one way tests run the real ``ulmrec`` command: this interpreter, offline, one thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The environment of every command a test starts: no hub, no parallel tokenizers, one thread.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false"}


def run_ulmrec(*args: str | Path, check: bool = False, env: dict[str, str] | None = None,
               cwd: Path | None = None, timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
    """``python -m ulmrec_app.main ARGS`` with :data:`OFFLINE_ENV`; with ``check`` a failure fails the test
    with the command's stderr."""
    proc = subprocess.run([sys.executable, "-m", "ulmrec_app.main", *map(str, args)], capture_output=True,
                          text=True, check=False, cwd=cwd, timeout=timeout,
                          env={**os.environ, **OFFLINE_ENV, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"ulmrec {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def run_console(script: str, *args: str | Path, env: dict[str, str] | None = None,
                unset: tuple[str, ...] = (), timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
    """An installed console script (``ulmrec``, ``ulmrec-eval``, ``ulmrec-index`` …) beside this interpreter,
    with :data:`OFFLINE_ENV` (plus ``env``, minus the variables in ``unset``); never raises on failure."""
    environment = {**os.environ, **OFFLINE_ENV, **(env or {})}
    for name in unset:
        environment.pop(name, None)
    return subprocess.run([str(Path(sys.executable).parent / script), *map(str, args)], capture_output=True,
                          text=True, check=False, timeout=timeout, env=environment)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that failed cleanly (exit 1, no traceback); fails the test
    otherwise."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    return done.stderr.strip()
