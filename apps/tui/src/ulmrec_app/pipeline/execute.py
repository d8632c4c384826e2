"""The process that runs one stage: ``python -m ulmrec_app.pipeline.execute runs/<name>/<stage>/plan.json``.

It is started in its own session (so it outlives the terminal, the SSH connection, the runner and the TUI),
writes the stage's ``stage.json`` as ``running`` with its pid, runs the stage's ``ulmrec`` commands one
after another with their output appended to ``log.txt`` and ``ULMREC_EVENTS`` pointing at ``events.jsonl``,
and ends by writing the manifest ``done`` (with the hash of the outputs and key figures), ``failed`` or
``stopped``.

Stopping: SIGTERM (or SIGINT/SIGHUP) to this process group asks the running command to stop gracefully:
it gets SIGINT (the trainers save a checkpoint on it), then SIGTERM after the job's ``grace_seconds``
(:data:`GRACE_SECONDS`; longer for ``train``, whose running step must finish before its checkpoint), then
SIGKILL. Each command runs in a process group of its own with a parent-death signal, so it also ends if
this process is killed with SIGKILL (the manifest then still says ``running`` with a dead pid, which readers
show as failed).
"""

from __future__ import annotations

import signal
from types import FrameType

#: Signals that mean "stop". The runner starts this process with them blocked (:func:`block_stop_signals`),
#: so a stop sent while the interpreter is still starting stays pending instead of killing the process before
#: it could record anything; they are unblocked once handlers are in place, and an early one is honoured
#: before the first command starts.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_EARLY_STOP: list[int] = []


def _early_stop(signum: int, frame: FrameType | None) -> None:
    _EARLY_STOP.append(signum)


def block_stop_signals() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` of the stage process: block the stop signals (they stay pending across exec)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


if __name__ == "__main__":
    for _sig in STOP_SIGNALS:
        signal.signal(_sig, _early_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

import contextlib  # noqa: E402 - after the early signal handlers on purpose
import ctypes  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from pydantic import BaseModel, Field  # noqa: E402

from ulmrec_app.pipeline.figures import stage_figures  # noqa: E402
from ulmrec_app.pipeline.manifest import (  # noqa: E402
    StageManifest,
    process_start_time,
    sha256_json,
    sha256_path,
    stamp_outputs,
)
from ulmrec_eval.runtime.environment import host_name, package_versions  # noqa: E402
from ulmrec_eval.runtime.events import EVENTS_ENV, STAGE_ENV, emit  # noqa: E402
from ulmrec_eval.runtime.io import atomic_write_text, read_json_model  # noqa: E402

PLAN_FILE = "plan.json"
LOG_FILE = "log.txt"
EVENTS_FILE = "events.jsonl"
GRACE_SECONDS = 30.0
#: Grace of stages whose command saves at the end of the running step (a slow CPU step + its checkpoint).
STAGE_GRACE_SECONDS = {"train": 180.0}
KILL_SECONDS = 10.0
#: Environment of every stage command: no progress bars (progress goes to events.jsonl), unbuffered output.
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "PYTHONUNBUFFERED": "1",
             "COLUMNS": "110", "TERM": "dumb"}


class StageJob(BaseModel):
    """``plan.json``: what the stage process runs (written by the runner, read by this module)."""

    schema_version: int = 1
    run: str
    stage: str
    commands: list[list[str]] = Field(description="`ulmrec …` argv lists, run in order.")
    outputs: list[str] = Field(description="Paths (relative to the stage folder) that must exist at the end.")
    config_hash: str
    input_hashes: dict[str, str]
    effective_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    code_versions: dict[str, str] = Field(default_factory=dict)
    resumed: bool = False
    device: str = "cpu"


def write_job(folder: Path, job: StageJob) -> Path:
    path = folder / PLAN_FILE
    atomic_write_text(path, job.model_dump_json(indent=2) + "\n")
    return path


def _python_argv(argv: list[str]) -> list[str]:
    """``ulmrec …`` -> this interpreter running the ``ulmrec`` entry point (same environment, no PATH)."""
    if argv and argv[0] == "ulmrec":
        return [sys.executable, "-m", "ulmrec_app.main", *argv[1:]]
    return argv


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setpgid(0, 0)
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: end with this process


class _Stopper:
    """Turns a stop request into SIGINT -> SIGTERM -> SIGKILL to the running command's process group."""

    def __init__(self, grace_seconds: float = GRACE_SECONDS) -> None:
        self.grace_seconds = grace_seconds
        self.requested = False
        self.child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def request(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            if self.requested:
                return
            self.requested = True
        threading.Thread(target=self._escalate, daemon=True).start()

    def _signal(self, sig: int) -> bool:
        child = self.child
        if child is None or child.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
        return True

    def _escalate(self) -> None:
        for sig, wait in ((signal.SIGINT, self.grace_seconds), (signal.SIGTERM, KILL_SECONDS),
                          (signal.SIGKILL, 0.0)):
            if not self._signal(sig):
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.child is None or self.child.poll() is not None:
                    return
                time.sleep(0.1)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def execute(folder: Path) -> int:
    """Run the stage described by ``folder/plan.json``; returns the process exit status."""
    job = read_json_model(folder / PLAN_FILE, StageJob)
    log_path, events_path = folder / LOG_FILE, folder / EVENTS_FILE
    stopper = _Stopper(STAGE_GRACE_SECONDS.get(job.stage, GRACE_SECONDS))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stopper.request)
    if _EARLY_STOP:
        stopper.requested = True
    manifest = StageManifest(
        stage=job.stage, run=job.run, status="running", config_hash=job.config_hash,
        input_hashes=job.input_hashes, effective_options=job.effective_options,
        code_versions=job.code_versions, commands=job.commands, outputs=job.outputs,
        package_versions=package_versions(), host=host_name(), device=job.device, pid=os.getpid(),
        pid_start=process_start_time(os.getpid()), started=time.time(), resumed=job.resumed)
    manifest.save(folder)
    env = {**os.environ, **QUIET_ENV, EVENTS_ENV: str(events_path), STAGE_ENV: job.stage}
    os.environ[EVENTS_ENV], os.environ[STAGE_ENV] = str(events_path), job.stage
    emit(message=f"{job.stage}: {'resumed' if job.resumed else 'started'}")
    status, code, error = "done", 0, None
    with log_path.open("ab") as log:
        for argv in job.commands:
            if stopper.requested:
                status = "stopped"
                break
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                stopper.child = subprocess.Popen(_python_argv(argv), stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, env=env, cwd=os.getcwd(),
                                                 preexec_fn=_child_setup)
            except OSError as exc:
                status, code, error = "failed", 127, f"cannot start {argv[0]}: {exc}"
                break
            code = stopper.child.wait()
            if code != 0:
                status = "stopped" if stopper.requested else "failed"
                error = None if stopper.requested else f"`{' '.join(argv[:3])}` exited with {code}: " + _tail(
                    log_path)
                break
    if status == "done" and stopper.requested:
        status = "stopped"
    if status == "done":
        missing = [name for name in job.outputs if not (folder / name).exists()]
        if missing:
            status, error = "failed", f"the commands ended but did not write {', '.join(missing)}"
    if status == "done":
        manifest.output_hash = sha256_json({name: sha256_path(folder / name) for name in job.outputs})
        manifest.output_files = stamp_outputs(folder, job.outputs)
        manifest.figures = stage_figures(job.stage, folder)
    manifest.status, manifest.exit_code, manifest.error = status, code or None, error  # type: ignore[assignment]
    manifest.finished = time.time()
    manifest.save(folder)
    emit(message=f"{job.stage}: {status}" + (f" ({error})" if error else ""))
    return {"done": 0, "stopped": 143}.get(status, 1)


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m ulmrec_app.pipeline.execute STAGE_FOLDER", file=sys.stderr)
        sys.exit(2)
    sys.exit(execute(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
