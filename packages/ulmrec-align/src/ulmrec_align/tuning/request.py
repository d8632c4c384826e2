"""What ``ulmrec align train`` is asked to do (:class:`TrainRequest`) and the names of the files of a run."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ulmrec_align.tuning.config import LoraSettings, TrainSettings

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
FINAL_ADAPTER = "final-adapter"
#: Set in the processes started by a multi-process launch (the launcher holds the lock, prepares, finalizes).
WORKER_ENV = "ULMREC_TRAIN_WORKER"


class TrainRequest(BaseModel):
    """Everything ``ulmrec align train`` was asked to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: Path = Field(description="Alignment-samples folder (`ulmrec align build`).")
    model: str = Field(description="smollm2, a local folder or a hub id.")
    out: Path
    lora: LoraSettings = Field(default_factory=LoraSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    resume: bool = False
    force: bool = False
    progress: bool = True


def partial_dir(out: Path) -> Path:
    """Where checkpoints live until the run is complete: ``T.partial`` beside ``T``."""
    target = out.absolute()
    return target.parent / f"{target.name}.partial"
