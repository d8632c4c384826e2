"""``runs/<name>/run.json``: which config a run came from, so that the TUI can launch its stages."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from ulmrec_eval.runtime.io import atomic_write_text, read_json_model

RUN_INFO = "run.json"


class RunInfo(BaseModel):
    """``runs/<name>/run.json``: where a run's config lives, so the TUI can launch its stages."""

    schema_version: int = 1
    name: str
    config: str
    description: str = ""
    stages: list[str] = []

    def save(self, run_dir: Path) -> None:
        atomic_write_text(run_dir / RUN_INFO, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load_or_none(cls, run_dir: Path) -> RunInfo | None:
        path = run_dir / RUN_INFO
        return read_json_model(path, cls) if path.is_file() else None
