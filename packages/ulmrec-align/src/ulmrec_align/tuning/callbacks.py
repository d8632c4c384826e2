"""The tuner's ``TrainerCallback``: validation NDCG@10 every few steps, the best adapter kept (with its letter
prior), early stopping, a training-time budget, the loss/learning-rate curve, and progress events
(``$ULMREC_EVENTS``)."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ulmrec_align.tuning.checkpoints import BEST_PREFIX, TuningProgress, save_adapter_atomically
from ulmrec_align.tuning.config import CurvePoint, ValidationPoint
from ulmrec_eval.runtime.errors import UlmrecError


@dataclass(frozen=True)
class ValidationScores:
    """What one validation measured: the score that selects the adapter, the uncalibrated score, and the
    letter prior it was calibrated with (None when not estimated)."""

    score: float
    raw: float | None = None
    prior: list[float] | None = None
    tasks: dict[str, dict[str, float]] | None = None   # code task -> {"loss", "exact"}
    weight: float | None = None   # relevance answers: the retriever's fusion weight W best on these users


#: ``validate(model) -> ValidationScores`` (or a bare float) on the validation ranking samples.
Validator = Callable[[Any], "ValidationScores | float"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint at ``step``."""

    def __init__(self, step: int) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step = step


class TrainingDivergedError(UlmrecError):
    """The training loss became NaN or infinite: later steps would only train on garbage, and a manifest
    cannot hold the value. Raised at the first logged step that shows it."""

    def __init__(self, step: int, lr: float, what: str) -> None:
        super().__init__(f"training diverged at step {step}: {what} (learning rate {lr:.2e}); lower --lr "
                         "(bf16 on a GPU is less forgiving than float32) and start again with --force")
        self.step = step


class StopRequest:
    """SIGINT/SIGTERM while training: the first asks for a checkpoint at the end of the current step and a
    stop (:class:`TuningCallback` does both); a second interrupts at once (``KeyboardInterrupt``)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        _emit(message="stop requested: saving a checkpoint after this step (again to stop at once)")

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM inside the block (main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _emit(**fields: Any) -> None:
    try:
        from ulmrec_eval.runtime.events import emit
    except ImportError:  # an older ulmrec-eval without events
        return
    emit(**fields)


def _all_agree(flag: bool) -> bool:
    """True if any process says True (so that every process takes the same stop decision)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        value = torch.tensor([1 if flag else 0], dtype=torch.int64)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())
    return flag


class TuningCallback(TrainerCallback):
    """Validation, best adapter, early stopping, time budget and events; its :class:`TuningProgress` is saved
    in each checkpoint (``SafeTrainer.progress_source``) and restored with :meth:`restore`.

    Every process validates the same (identical) weights, so stop decisions agree without communication;
    only the main process writes the best adapter (``run_dir/best-adapter-step-N``).
    """

    def __init__(self, *, run_dir: Path, validate: Validator | None, every: int, patience: int | None,
                 max_seconds: float | None, is_main: bool, samples_counter: Callable[[], int],
                 world_size: int = 1, task_losses: Callable[[], dict[str, float]] | None = None,
                 stop: StopRequest | None = None) -> None:
        self.run_dir = run_dir
        self.validate = validate
        self.every = every
        self.patience = patience
        self.max_seconds = max_seconds
        self.is_main = is_main
        self.samples_counter = samples_counter
        self.world_size = world_size
        self.task_losses = task_losses
        self.stop = stop
        self.progress = TuningProgress()
        self._base_samples = 0
        self._start = time.monotonic()
        self._last_validated = -1

    def restore(self, progress: TuningProgress) -> None:
        """Continue from a checkpoint's progress; why the earlier attempt stopped (``interrupted``, its time
        budget) is not why this one will, so its ``stop_reason`` is cleared."""
        self.progress = progress.model_copy(update={"stop_reason": ""}, deep=True)
        self._base_samples = progress.samples_seen
        validated_last = bool(progress.history) and progress.history[-1].step == progress.step
        self._last_validated = progress.step if validated_last else -1

    def snapshot(self, step: int) -> TuningProgress:
        """The progress as of now (for a checkpoint or the manifest)."""
        return self.progress.model_copy(update={
            "step": step, "elapsed_seconds": self.elapsed(),
            "samples_seen": self._base_samples + self.samples_counter() * self.world_size}, deep=True)

    def elapsed(self) -> float:
        return self.progress.elapsed_seconds + (time.monotonic() - self._start)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._start = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        step = state.global_step
        if self.stop is not None and _all_agree(self.stop.requested):
            self.progress.stop_reason = "interrupted"
            control.should_save = True           # the Trainer saves checkpoint-<step> right after this
            control.should_training_stop = True
            if self.is_main:
                _emit(step=step, total=state.max_steps, message=f"interrupted: saving checkpoint-{step}")
            return
        out_of_time = self.max_seconds is not None and _all_agree(self.elapsed() >= self.max_seconds)
        last = step >= state.max_steps or out_of_time
        if self.validate is not None and (step % self.every == 0 or last):
            self._run_validation(kwargs["model"], step, control)
        if out_of_time and not control.should_training_stop:
            self.progress.stop_reason = f"time budget ({(self.max_seconds or 0) / 60:g} min)"
            control.should_training_stop = True
        if self.is_main:
            _emit(step=step, total=state.max_steps, message=self.progress.stop_reason or None)

    def _run_validation(self, model: Any, step: int, control: TrainerControl) -> None:
        if step == self._last_validated:
            return
        assert self.validate is not None
        with torch.random.fork_rng(devices=[]):  # validation never shifts the training RNG stream
            measured = self.validate(model)
        scores = measured if isinstance(measured, ValidationScores) else ValidationScores(float(measured))
        score = scores.score
        self._last_validated = step
        p = self.progress
        tasks = scores.tasks or {}
        point = ValidationPoint(step=step, ndcg_at_10=score, ndcg_at_10_raw=scores.raw,
                                fusion_weight=scores.weight,
                                task_loss={t: v["loss"] for t, v in tasks.items()},
                                task_exact={t: v["exact"] for t, v in tasks.items()})
        best = next((h.selection_key for h in p.history if h.step == p.best_step),
                    None if p.best_score is None else (p.best_score, 0.0))
        p.history.append(point)
        if best is None or point.selection_key > best:
            p.best_score, p.best_step, p.bad_validations = score, step, 0
            p.best_prior = scores.prior
            if self.is_main:
                save_adapter_atomically(model, self.run_dir / f"{BEST_PREFIX}{step}")
        else:
            p.bad_validations += 1
            if self.patience is not None and p.bad_validations >= self.patience:
                p.stop_reason = f"early stopping (no better NDCG@10 in {self.patience} validations)"
                control.should_training_stop = True
        if self.is_main:
            metric = {"valid/ndcg@10": score}
            if scores.raw is not None:
                metric["valid/ndcg@10 (uncalibrated)"] = scores.raw
            for task, values in tasks.items():
                metric[f"valid/loss {task}"] = values["loss"]
                metric[f"valid/exact {task}"] = values["exact"]
            alone = (f", LLM alone {scores.raw:.4f}, W = {scores.weight:g}; the LLM alone selects"
                     if scores.weight is not None and scores.raw is not None else "")
            _emit(step=step, metric=metric,
                  message=f"step {step}: validation NDCG@10 {score:.4f}{alone} "
                          f"(best at {p.best_step}: {p.best_score:.4f})")

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        lr = float(logs.get("learning_rate", 0.0))
        tasks = self.task_losses() if self.task_losses is not None else {}
        bad = {name: value for name, value in {"loss": float(logs["loss"]), **tasks}.items()
               if not math.isfinite(value)}
        if bad:
            raise TrainingDivergedError(state.global_step, lr,
                                   ", ".join(f"{name} is {value}" for name, value in bad.items()))
        self.progress.curve.append(CurvePoint(step=state.global_step, loss=float(logs["loss"]), lr=lr,
                                              elapsed_seconds=round(self.elapsed(), 3),
                                              task_loss={k: round(v, 5) for k, v in tasks.items()}))
        if self.is_main:
            metric = {"train/lr": lr, **{f"train/loss {task}": v for task, v in tasks.items()}}
            _emit(step=state.global_step, total=state.max_steps, loss=logs["loss"], metric=metric)
