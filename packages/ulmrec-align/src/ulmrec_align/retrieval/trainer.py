"""Training loop with validation, early stopping and step-granular, bit-exact resumption.

An epoch visits the training windows in a permutation drawn from ``(seed, epoch)`` alone, in batches of
``batch_size`` packed into one row. After every step the loop is at a *boundary*: a checkpoint written there
(every ``checkpoint_every_steps``, at every validation, and on Ctrl-C) holds the weights, the AdamW state, the
RNG state dropout draws from, and the position in the epoch, so a resumed run performs exactly the same float
operations as an uninterrupted one (identical weights on CPU).

Ctrl-C (SIGINT) only sets a flag: the current step finishes, the checkpoint is written, then
:class:`KeyboardInterrupt` is raised. A second Ctrl-C interrupts at once (the last checkpoint stays valid).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import torch
from tqdm import tqdm

from ulmrec_align.retrieval.base import SequenceModel, SequenceRetriever
from ulmrec_align.retrieval.candidates import evaluate_split
from ulmrec_align.retrieval.checkpoint import load_checkpoint, restore, save_checkpoint
from ulmrec_align.retrieval.config import RetrieverConfig
from ulmrec_align.retrieval.data import EvalInputs, TrainWindows
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.lru import parameter_groups
from ulmrec_eval.runtime.events import emit

CHECKPOINT_NAME = "checkpoint.safetensors"
StopReason = Literal["early_stopping", "max_epochs", "time_limit"]


@dataclass
class RetrieverProgress:
    """Where training stands (saved as JSON in the checkpoint)."""

    config_hash: str
    epoch: int = 0                     # epochs fully done (0-based index of the current epoch)
    step_in_epoch: int = 0             # optimisation steps done in the current epoch
    global_step: int = 0
    best_score: float | None = None
    best_epoch: int = 0                # 1-based epoch of the best validation (0: none yet)
    bad_validations: int = 0           # validations since the last improvement
    elapsed_seconds: float = 0.0       # training + validation time, summed over resumes
    loss_sum: float = 0.0              # of the current epoch
    loss_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    stop_reason: str | None = None
    dataset: dict[str, Any] | None = None  # name, split_sha256, n_items of the data trained on


class _DivergedError(Exception):
    """A non-finite loss, weight or validation score: training stops without writing a checkpoint."""


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The permutation of the ``n`` training windows for ``epoch`` (depends on ``(seed, epoch)`` only)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


class _StopFlag:
    requested = False


@contextmanager
def _deferred_sigint() -> Iterator[_StopFlag]:
    """While active, the first SIGINT sets a flag instead of raising (main thread only)."""
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class RetrieverTrainer:
    """Trains a sequence model (LRURec, SASRec) on packed windows; validates on the validation split."""

    def __init__(self, *, model: SequenceModel, config: RetrieverConfig, windows: TrainWindows,
                 valid: EvalInputs, out_dir: str | Path, device: str | torch.device = "cpu",
                 show_progress: bool = True, epoch_log: Callable[[str], None] | None = None,
                 dataset: dict[str, Any] | None = None) -> None:
        if len(windows) == 0:
            raise RetrieverError("no training windows: every user needs at least one training interaction")
        self.model = model
        self.config = config
        self.tc = config.train
        self.windows = windows
        self.valid = valid
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.show_progress = show_progress
        self.epoch_log = epoch_log or (tqdm.write if show_progress else None)
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(parameter_groups(model, self.tc.weight_decay), lr=self.tc.lr,
                                           betas=self.tc.adam_betas, eps=self.tc.adam_eps)
        self.progress = RetrieverProgress(config_hash=config.training_hash(), dataset=dataset)
        self.best_state: dict[str, torch.Tensor] | None = None
        self._mid_step = False
        self._clock = time.monotonic()

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.windows) / self.tc.batch_size)

    # ------------------------------------------------------------------------------------------ state
    def _tick(self) -> None:
        now = time.monotonic()
        self.progress.elapsed_seconds += now - self._clock
        self._clock = now

    def save(self) -> None:
        """Write the checkpoint at the current boundary (never with non-finite weights)."""
        bad = [name for name, value in self.model.state_dict().items()
               if value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if bad:
            raise _DivergedError(f"non-finite weights ({bad[0]})")
        self._tick()
        save_checkpoint(self.checkpoint_path, model=self.model, optimizer=self.optimizer,
                        best_state=self.best_state, progress=asdict(self.progress))

    def load(self) -> None:
        """Resume from the checkpoint in ``out_dir`` (the training config must be the same)."""
        tensors, state = load_checkpoint(self.checkpoint_path)
        try:
            progress = RetrieverProgress(**state["progress"])
        except (KeyError, TypeError) as exc:
            raise RetrieverError(f"corrupt checkpoint state ({exc})", path=self.checkpoint_path) from None
        if progress.config_hash != self.progress.config_hash:
            raise RetrieverError("the checkpoint was written with a different model/training config; resume "
                                 "with the same settings or start a new --out", path=self.checkpoint_path)
        _check_same_dataset(progress.dataset, self.progress.dataset, self.checkpoint_path)
        try:
            self.best_state = restore(tensors, state, model=self.model, optimizer=self.optimizer)
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RetrieverError(f"the checkpoint does not fit this model ({first})",
                                 path=self.checkpoint_path) from None
        # a finished run may go on when epochs, patience or the time budget grew: re-check the stop rule
        progress.finished, progress.stop_reason = False, None
        self.progress = progress
        self._clock = time.monotonic()

    def best_weights(self) -> dict[str, torch.Tensor]:
        """Weights of the best validation (the current ones if there was no validation)."""
        return self.best_state if self.best_state is not None else self.model.state_dict()

    # --------------------------------------------------------------------------------------- training
    def _step(self, indices: torch.Tensor) -> float:
        packed = self.windows.pack(indices.numpy())
        to = self.device
        tokens = torch.from_numpy(packed.tokens).unsqueeze(0).to(to)
        labels = torch.from_numpy(packed.labels).unsqueeze(0).to(to)
        segments = torch.from_numpy(packed.segments).unsqueeze(0).to(to)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model.loss(tokens, labels, segments, label_smoothing=self.tc.label_smoothing)
        if not bool(torch.isfinite(loss)):
            raise _DivergedError(f"non-finite loss ({float(loss.detach())})")
        loss.backward()
        if self.tc.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach())

    def validate(self) -> dict[str, float]:
        """Full-ranking metrics on the validation split at the current weights."""
        try:
            result = evaluate_split(SequenceRetriever(model=self.model, device=self.device), self.valid,
                                    batch_size=self.tc.eval_batch_size,
                                    mask_history=self.tc.mask_history_in_validation, pool_size=None)
        except ValueError as exc:  # the evaluator refuses NaN scores
            raise _DivergedError(f"validation failed: {exc}") from None
        return result.metrics(self.config.candidates.metric_ks)

    def _should_stop(self) -> StopReason | None:
        p = self.progress
        if p.bad_validations >= self.tc.patience:
            return "early_stopping"
        if p.epoch >= self.tc.epochs:
            return "max_epochs"
        if self.tc.max_minutes is not None and p.history:
            per_epoch = p.elapsed_seconds / p.epoch
            if p.elapsed_seconds + per_epoch > 60.0 * self.tc.max_minutes:
                return "time_limit"
        return None

    def fit(self, *, resume: bool = False,
            on_step: Callable[[RetrieverProgress], None] | None = None) -> RetrieverProgress:
        """Train until early stopping, ``epochs`` or the time budget; returns the final
        :class:`RetrieverProgress`.

        ``on_step`` is called at every step boundary (it may raise :class:`KeyboardInterrupt`, which, like
        Ctrl-C, leaves a checkpoint there). ``resume`` continues from ``out_dir``'s checkpoint.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load()
        elif self.checkpoint_path.exists():
            raise RetrieverError("a checkpoint already exists here: pass --resume to continue it or choose "
                                 "another --out", path=self.checkpoint_path)
        self._clock = time.monotonic()
        try:
            with _deferred_sigint() as flag:
                self._run(flag, on_step)
        except KeyboardInterrupt:
            if not self._mid_step:
                with contextlib.suppress(_DivergedError):  # keep the last good checkpoint instead
                    self.save()
            raise
        except _DivergedError as exc:
            raise self._diverged(str(exc)) from None
        return self.progress

    def _diverged(self, what: str) -> RetrieverError:
        """The one-line error for a diverged run; the last good checkpoint (if any) is left as it is."""
        p = self.progress
        where = f"epoch {p.epoch + 1}, step {p.step_in_epoch}"
        if self.checkpoint_path.is_file():
            kept = f"the last good checkpoint stays in {self.out_dir}"
        else:
            kept = "no checkpoint was written"
            with contextlib.suppress(OSError):
                self.out_dir.rmdir()  # only when empty: nothing half-made is left behind
        return RetrieverError(f"training diverged: {what} at {where} (lr {self.tc.lr:g}); stopped, {kept}; "
                              "lower --lr and start again (--force)")

    def _run(self, flag: _StopFlag, on_step: Callable[[RetrieverProgress], None] | None) -> None:
        p = self.progress
        n_steps = self.steps_per_epoch
        while not p.finished:
            reason = self._should_stop() if p.step_in_epoch == 0 else None
            if reason is not None:
                p.finished, p.stop_reason = True, reason
                self.save()
                return
            order = epoch_order(self.tc.seed, p.epoch, len(self.windows))
            bar = tqdm(total=n_steps, initial=p.step_in_epoch, desc=f"epoch {p.epoch + 1}", leave=False,
                       disable=not self.show_progress, dynamic_ncols=True)
            try:
                while p.step_in_epoch < n_steps:
                    start = p.step_in_epoch * self.tc.batch_size
                    self._mid_step = True
                    loss = self._step(order[start:start + self.tc.batch_size])
                    p.step_in_epoch += 1
                    p.global_step += 1
                    p.loss_sum += loss
                    p.loss_count += 1
                    self._mid_step = False
                    bar.update(1)
                    bar.set_postfix(loss=f"{p.loss_sum / p.loss_count:.4f}",
                                    best=f"{p.best_score:.4f}" if p.best_score is not None else "-")
                    if on_step is not None:
                        on_step(p)
                    if flag.requested:
                        raise KeyboardInterrupt
                    if p.global_step % self.tc.checkpoint_every_steps == 0:
                        self.save()
            finally:
                bar.close()
            self._end_epoch()
            if flag.requested:
                raise KeyboardInterrupt

    def _end_epoch(self) -> None:
        p = self.progress
        entry: dict[str, Any] = {"epoch": p.epoch + 1, "steps": p.global_step,
                                 "loss": p.loss_sum / max(p.loss_count, 1)}
        if (p.epoch + 1) % self.tc.validate_every_epochs == 0 or p.epoch + 1 >= self.tc.epochs:
            metrics = self.validate()
            score = metrics[self.tc.best_metric]
            entry["valid"] = metrics
            if p.best_score is None or score > p.best_score:
                p.best_score, p.best_epoch, p.bad_validations = score, p.epoch + 1, 0
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                p.bad_validations += 1
        p.epoch += 1
        p.step_in_epoch = 0
        p.loss_sum, p.loss_count = 0.0, 0
        self._tick()
        entry["elapsed_seconds"] = round(p.elapsed_seconds, 3)
        p.history.append(entry)
        shown = entry.get("valid", {})
        best = p.best_score if p.best_score is not None else float("nan")
        metric = self.tc.best_metric
        line = (f"epoch {entry['epoch']}: loss {entry['loss']:.4f}"
                + (f", valid {metric} {shown[metric]:.4f}" if shown else "")
                + f" (best {best:.4f} at epoch {p.best_epoch}; {p.elapsed_seconds:.0f}s)")
        if self.epoch_log is not None:
            self.epoch_log(line)
        # pipeline progress (a no-op outside `ulmrec run`): epochs done of the cap, the loss, validation
        emit(step=p.epoch, total=self.tc.epochs, loss=entry["loss"], message=line,
             metric={f"valid/{k}": float(v) for k, v in shown.items() if math.isfinite(v)} or None)
        self.save()


def _check_same_dataset(saved: dict[str, Any] | None, current: dict[str, Any] | None, where: Path) -> None:
    """A checkpoint resumes only on the split it was trained on (same ``split_sha256`` and item count)."""
    if saved is None or current is None:
        return
    keys = ("split_sha256", "n_items")
    if any(saved.get(key) != current.get(key) for key in keys):

        def show(d: dict[str, Any]) -> str:
            return f"{d.get('name')!r}, {d.get('n_items')} items, split {str(d.get('split_sha256'))[:12]}…"

        raise RetrieverError(f"the checkpoint was trained on another split ({show(saved)}) than --data "
                             f"({show(current)}); resume with the same --data or start a new --out",
                             path=where)
