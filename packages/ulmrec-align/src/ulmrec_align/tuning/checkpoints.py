"""Checkpoints that appear whole, hold no pickled objects, and carry the tuner's own progress.

:class:`SafeTrainer` is a Hugging Face ``Trainer`` whose ``checkpoint-N`` folders are written under
``.staging-checkpoint-N`` and renamed into place only when every process has written its part, so a
``kill -9`` leaves either no ``checkpoint-N`` or a complete one. A checkpoint holds the LoRA adapter
(``adapter_model.safetensors``), the optimizer, scheduler and RNG states as safetensors + JSON
(:mod:`ulmrec_align.tuning.state_files`, instead of ``Trainer``'s pickled ``optimizer.pt`` /
``scheduler.pt`` / ``rng_state*.pth``), ``trainer_state.json`` and ``ulmrec_progress.json``
(:class:`TuningProgress`); the pickled ``training_args.bin`` that ``Trainer`` writes is deleted before the
rename (nothing reads it).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from transformers import Trainer

from ulmrec_align.tuning import state_files
from ulmrec_align.tuning.config import BEST_PREFIX, CurvePoint, ValidationPoint
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_text, read_json_model

PROGRESS_FILE = "ulmrec_progress.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_BEST = re.compile(rf"^{BEST_PREFIX}(\d+)$")
_PICKLED = ("training_args.bin",)
#: What older checkpoints held instead of :mod:`state_files` (refused: reading them needs ``torch.load``).
_OLD_STATE = ("optimizer.pt", "scheduler.pt", "rng_state.pth")


class TuningProgress(BaseModel):
    """The tuner's state saved with each checkpoint (validation, early stopping, time and sample counts)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    bad_validations: int = Field(default=0, description="Validations since the last improvement.")
    history: list[ValidationPoint] = Field(default_factory=list)
    curve: list[CurvePoint] = Field(default_factory=list)
    best_prior: list[float] | None = Field(default=None, description="Letter prior of the best adapter.")
    elapsed_seconds: float = Field(default=0.0, description="Training time before this point (all sessions).")
    samples_seen: int = 0
    stop_reason: str = ""


def checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of ``run_dir`` as ``(step, path)``, oldest first (staging folders excluded)."""
    folder = Path(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m[1]), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return sorted(found)


def best_adapters(run_dir: str | Path) -> dict[int, Path]:
    """``best-adapter-step-N`` folders of ``run_dir`` by step."""
    folder = Path(run_dir)
    if not folder.is_dir():
        return {}
    return {int(m[1]): p for p in folder.iterdir() if (m := _BEST.match(p.name)) and p.is_dir()}


def read_progress(checkpoint: str | Path) -> TuningProgress:
    path = Path(checkpoint) / PROGRESS_FILE
    return read_json_model(path, TuningProgress) if path.is_file() else TuningProgress()


def remove_staging(run_dir: str | Path) -> None:
    """Delete leftovers of killed writes (``.staging-*`` and ``.tmp-*`` folders) in ``run_dir``."""
    folder = Path(run_dir)
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith((".staging-", ".tmp-")):
                shutil.rmtree(entry, ignore_errors=True)


def save_adapter(model: Any, folder: str | Path) -> None:
    """A peft model's adapter in safetensors, without full copies of resized embedding matrices."""
    model.save_pretrained(str(folder), safe_serialization=True, save_embedding_layers=False)
    mask = os.umask(0)
    os.umask(mask)
    for file in Path(folder).iterdir():  # safetensors creates its files 0600; give them the usual mode
        if file.is_file():
            os.chmod(file, 0o666 & ~mask)


def save_adapter_atomically(model: Any, target: Path) -> None:
    """:func:`save_adapter` into a temporary sibling, then renamed onto ``target``."""
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(model, tmp)
    if target.exists():
        shutil.rmtree(target)
    os.rename(tmp, target)


def prune(run_dir: Path, *, keep: int, current_best: int | None) -> None:
    """Keep the newest ``keep`` checkpoints, and the best adapters they (or the live run) refer to."""
    complete = checkpoints(run_dir)
    for _, path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    wanted = {read_progress(path).best_step for _, path in complete[-keep:]} | {current_best}
    for step, path in best_adapters(run_dir).items():
        if step not in wanted:
            shutil.rmtree(path, ignore_errors=True)


def _refuse_old_state(folder: Path) -> None:
    old = [name for name in _OLD_STATE if (folder / name).is_file()]
    if old and not (folder / state_files.OPTIMIZER_FILE).is_file():
        raise InputError(f"a checkpoint of an older ulmrec (its {', '.join(old)} would need torch.load); "
                         "start over with --force", path=folder)


class SafeTrainer(Trainer):
    """``Trainer`` with whole-or-nothing checkpoints, no pickle files, and a :class:`TuningProgress` in each.

    ``progress_source()`` returns the :class:`TuningProgress` to store at save time (set by the tuning
    callback).
    """

    def __init__(self, *args: Any, keep_checkpoints: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_checkpoints = keep_checkpoints
        self.progress_source: Any = lambda: TuningProgress()
        self.samples_local = 0
        self._staging: str | None = None

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        self.samples_local += int(inputs["input_ids"].shape[0])
        return super().training_step(model, inputs, num_items_in_batch)

    def _save(self, output_dir: str | None = None, state_dict: dict[str, Any] | None = None) -> None:
        """The adapter only (safetensors; resized embedding matrices are not copied in, the added rows are
        the adapter's own trainable tokens) and the tokenizer; no pickled ``training_args.bin``."""
        if not self.args.should_save:
            return
        folder = str(output_dir or self.args.output_dir)
        os.makedirs(folder, exist_ok=True)
        save_adapter(self.accelerator.unwrap_model(self.model), folder)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(folder)

    # -------------------------------------------------- optimizer, scheduler, RNG: safetensors + JSON
    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:  # pragma: no cover - not used by ulmrec
            raise NotImplementedError("ulmrec checkpoints support plain and DDP training only")
        if self.args.should_save:
            optimizer: Any = self.optimizer
            state_files.save_optimizer(optimizer, Path(output_dir) / state_files.OPTIMIZER_FILE)
            state_files.save_scheduler(self.lr_scheduler, Path(output_dir) / state_files.SCHEDULER_FILE)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        folder = Path(checkpoint)
        _refuse_old_state(folder)
        optimizer: Any = self.optimizer
        scheduler: Any = self.lr_scheduler
        state_files.load_optimizer(optimizer, folder / state_files.OPTIMIZER_FILE)
        scheduler.load_state_dict(state_files.load_scheduler_state(folder / state_files.SCHEDULER_FILE))

    def _save_rng_state(self, output_dir: str) -> None:
        os.makedirs(output_dir, exist_ok=True)
        name = state_files.rng_file(self.args.process_index, self.args.world_size)
        state_files.save_rng_state(Path(output_dir) / name)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        _refuse_old_state(Path(checkpoint))
        state_files.load_rng_state(Path(checkpoint) / state_files.rng_file(self.args.process_index,
                                                                            self.args.world_size))

    def _get_output_dir(self, trial: Any) -> str:
        return self._staging if self._staging is not None else str(super()._get_output_dir(trial))

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = Path(str(self.args.output_dir))
        name = f"checkpoint-{self.state.global_step}"
        staging = run_dir / f".staging-{name}"
        self._staging = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.args.should_save:
            written = staging / name
            for file in _PICKLED:
                (written / file).unlink(missing_ok=True)
            progress: TuningProgress = self.progress_source()
            atomic_write_text(written / PROGRESS_FILE, progress.model_dump_json(indent=2) + "\n")
            final = run_dir / name
            if final.exists():
                shutil.rmtree(final)
            os.rename(written, final)
            shutil.rmtree(staging, ignore_errors=True)
            prune(run_dir, keep=self.keep_checkpoints, current_best=progress.best_step)
        self.accelerator.wait_for_everyone()
