"""What the TUI shows, read from a runs folder (no Textual here, so it is testable and fast to import).

Actions go through the ``ulmrec`` command (``ulmrec run CONFIG --stage NAME --detach``), so a stage launched
from the TUI is the same detached process as one started from a shell; stopping sends SIGTERM to the stage's
process group (:func:`ulmrec_app.pipeline.runner.stop_stage`), which leaves it resumable.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ulmrec_app.pipeline.config import STAGES
from ulmrec_app.pipeline.execute import EVENTS_FILE, LOG_FILE
from ulmrec_app.pipeline.manifest import StageManifest, Status
from ulmrec_app.pipeline.run_info import RunInfo
from ulmrec_eval.runtime.events import StageEvent, read_events

#: One glyph per status, for compact stage strips.
GLYPH = {"done": "✓", "running": "▶", "failed": "✗", "stopped": "■", "pending": "·", "missing": " "}


@dataclass
class StageRow:
    """One stage of a run as the TUI shows it."""

    name: str
    status: Status | str            # a StageManifest status, or "missing" (no folder yet)
    elapsed: float | None = None
    figures: dict[str, float | int | str] = field(default_factory=dict)
    pid: int | None = None
    error: str | None = None
    reused_from: str | None = None
    resumed: bool = False
    manifest: StageManifest | None = None

    @property
    def key_figure(self) -> str:
        for key in ("overall/ndcg@10", "test/ndcg@10", "loss", "retriever overall/ndcg@10", "users",
                    "records", "collisions"):
            if key in self.figures:
                value = self.figures[key]
                return f"{key.split('/')[-1]} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
        return ""


@dataclass
class RunView:
    """A run folder: its stages in order and where its config lives."""

    name: str
    folder: Path
    info: RunInfo | None
    stages: list[StageRow]

    @property
    def status(self) -> str:
        states = [s.status for s in self.stages]
        for state in ("running", "failed", "stopped"):
            if state in states:
                return state
        if states and all(s == "done" for s in states):
            return "done"
        return "pending" if any(s == "done" for s in states) else "new"

    @property
    def strip(self) -> str:
        return "".join(GLYPH.get(str(s.status), "?") for s in self.stages)

    @property
    def elapsed(self) -> float:
        return sum(s.elapsed or 0.0 for s in self.stages)

    def stage(self, name: str) -> StageRow | None:
        return next((s for s in self.stages if s.name == name), None)


def load_run(folder: Path) -> RunView:
    """Read a run folder; unreadable manifests show as failed with the reason."""
    try:
        info = RunInfo.load_or_none(folder)
    except Exception:
        info = None
    names = info.stages if info and info.stages else [s for s in STAGES if (folder / s).exists()]
    rows = []
    for name in names:
        stage_dir = folder / name
        reused = os.readlink(stage_dir) if stage_dir.is_symlink() else None
        try:
            manifest = StageManifest.load_or_none(stage_dir)
        except Exception as exc:
            rows.append(StageRow(name=name, status="failed", error=str(exc)))
            continue
        if manifest is None:
            rows.append(StageRow(name=name, status="missing", reused_from=reused))
            continue
        rows.append(StageRow(name=name, status=manifest.effective_status(), elapsed=manifest.elapsed,
                             figures=dict(manifest.figures), pid=manifest.pid, error=manifest.error,
                             reused_from=reused, resumed=manifest.resumed, manifest=manifest))
    return RunView(name=folder.name, folder=folder, info=info, stages=rows)


def list_runs(runs_dir: Path) -> list[RunView]:
    """Every run under ``runs_dir`` (folders with a run.json or stage folders), by name."""
    if not runs_dir.is_dir():
        return []
    runs = []
    for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (folder / "run.json").is_file() or any((folder / s).exists() for s in STAGES):
            runs.append(load_run(folder))
    return runs


def log_tail(path: Path, lines: int = 200, max_bytes: int = 256 * 1024) -> list[str]:
    """The last ``lines`` lines of a log (reads at most ``max_bytes`` from its end)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return text.splitlines()[-lines:]


def stage_log(run: RunView, stage: str, lines: int = 200) -> list[str]:
    return log_tail(run.folder / stage / LOG_FILE, lines)


def stage_events(run: RunView, stage: str) -> list[StageEvent]:
    try:
        return read_events(run.folder / stage / EVENTS_FILE)
    except Exception:
        return []


def last_progress(events: list[StageEvent]) -> StageEvent | None:
    """The latest event with a step (for the progress bar)."""
    return next((e for e in reversed(events) if e.step is not None), None)


Points = list[tuple[float, float]]


def curves(run: RunView) -> tuple[Points, Points, Points]:
    """Training loss, validation NDCG@10 (the score that selects the adapter) and the learning rate as
    ``(step, value)`` points, from the train stage's events."""
    events = stage_events(run, "train")
    loss = [(float(e.step or i), e.loss) for i, e in enumerate(events) if e.loss is not None]
    ndcg = [(float(e.step or i), v) for i, e in enumerate(events) for k, v in (e.metric or {}).items()
            if k in ("valid/ndcg@10", "ndcg@10")]
    lr = [(float(e.step or i), v) for i, e in enumerate(events) for k, v in (e.metric or {}).items()
          if k == "train/lr"]
    return loss, ndcg, lr


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


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def folder_size(path: Path) -> int:
    """Bytes under ``path`` (links not followed, so reused stages count once)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def now() -> float:
    return time.time()
