"""A runs folder as the TUI shows it: each run's stages in order, with status, time, figures and pid, read
from the files the pipeline writes (no Textual here, so it is testable and fast to import)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ulmrec_app.pipeline.config import STAGES
from ulmrec_app.pipeline.manifest import StageManifest, Status
from ulmrec_app.pipeline.run_info import RunInfo

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
