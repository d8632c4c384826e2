"""``ulmrec retrieve tune``: a small search over retriever settings, selected on validation only.

Trials (each a normal ``retrieve train`` run folder in ``<out>.trials/NNN``) vary dropout (``dropout`` and
``lru_dropout`` together for LRURec), the learning rate, the weight decay and the hidden size. Trial 0 is
the given (default) config; the others are drawn without replacement from the grid by a seeded RNG. Every
trial early-stops and is scored on **validation NDCG@10**; the test split is never looked at while searching.
A trial is started only while the time budget is expected to cover it (the mean duration of the trials so
far), and each trial's own training budget is what is left.

The output folder (written whole, like ``retrieve train``'s) holds the selected trial's ``model.safetensors``
and ``config.json``, ``candidates.jsonl`` and ``metrics.json`` computed once for that model (valid and test),
and ``tune.json`` (:class:`TuneReport`: every trial's settings, validation score and time).

**Resume.** ``<out>.trials/plan.json`` (:class:`TunePlan`: base config, grid, seed, dataset) is written first,
and each finished trial leaves ``NNN/trial.json``. ``resume=True`` (``--resume``) checks that the plan is the
same, keeps the finished trials, continues a killed trial from its checkpoint and goes on with the budget that
is left (``--max-minutes`` and ``--max-trials`` may change); a different base config, grid, seed or dataset is
refused in one line.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.api import (
    CONFIG_FILE,
    MODEL_FILE,
    load_retriever,
    train_retriever,
    write_evaluation,
)
from ulmrec_align.retrieval.config import RETRIEVER_SCHEMA_VERSION, RetrieverConfig
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.trainer import CHECKPOINT_NAME
from ulmrec_eval.runtime.artifacts import atomic_dir, check_writable, folder_lock
from ulmrec_eval.runtime.devices import check_device
from ulmrec_eval.runtime.io import atomic_write_json, read_json_model

TUNE_FILE = "tune.json"
PLAN_FILE = "plan.json"
TRIAL_FILE = "trial.json"
SELECTION_METRIC = "ndcg@10"

#: The grid searched: setting name -> values (``dropout`` sets both dropouts of LRURec).
DEFAULT_SPACE: dict[str, tuple[float, ...]] = {
    "dropout": (0.1, 0.2, 0.3, 0.4, 0.5),
    "lr": (5e-4, 1e-3, 2e-3),
    "weight_decay": (0.0, 0.01, 0.05),
    "hidden_size": (32, 64, 128),
}


class TuneTrial(BaseModel):
    """One trial of the search."""

    model_config = ConfigDict(extra="forbid")

    index: int
    settings: dict[str, float] = Field(description="The searched settings of this trial.")
    valid_score: float | None = Field(description="Best validation NDCG@10 reached (None: no validation).")
    best_epoch: int
    epochs_run: int
    stop_reason: str | None
    seconds: float
    folder: str


class TunePlan(BaseModel):
    """``<out>.trials/plan.json``: what a search is, so that ``--resume`` continues only the same one."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = RETRIEVER_SCHEMA_VERSION
    kind: str = "retriever-tune-plan"
    base: dict[str, Any] = Field(description="The base RetrieverConfig (trial 0).")
    space: dict[str, list[float]]
    seed: int
    dataset: dict[str, Any]


class TuneReport(BaseModel):
    """``tune.json``: what was tried and what was kept."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = RETRIEVER_SCHEMA_VERSION
    kind: str = "retriever-tune"
    metric: str = Field(default=SELECTION_METRIC, description="Selection metric, on the validation split.")
    max_minutes: float | None
    seed: int
    space: dict[str, list[float]]
    trials: list[TuneTrial]
    best: int = Field(description="Index of the selected trial.")
    dataset: dict[str, Any]
    note: str = ("selected on the validation split only; the test figures in metrics.json were computed "
                 "once, for the selected model")


def apply_settings(base: RetrieverConfig, settings: dict[str, float]) -> RetrieverConfig:
    """``base`` with the searched settings applied (validated); selection runs on NDCG@10."""
    model = base.model.model_dump()
    train = base.train.model_dump()
    for key, value in settings.items():
        if key == "dropout":
            model["dropout"] = value
            if "lru_dropout" in model:
                model["lru_dropout"] = value
        elif key == "hidden_size":
            model["hidden_size"] = int(value)
        elif key in ("lr", "weight_decay"):
            train[key] = value
        else:
            raise RetrieverError(f"unknown tuning setting {key!r} (known: {', '.join(DEFAULT_SPACE)})")
    train["best_metric"] = SELECTION_METRIC
    return RetrieverConfig.model_validate({**base.model_dump(), "model": model, "train": train})


def _base_settings(base: RetrieverConfig, space: dict[str, tuple[float, ...]]) -> dict[str, float]:
    values = {"dropout": base.model.dropout, "lr": base.train.lr, "weight_decay": base.train.weight_decay,
              "hidden_size": float(base.model.hidden_size)}
    return {key: float(values[key]) for key in space}


def trial_settings(base: RetrieverConfig, space: dict[str, tuple[float, ...]],
                   seed: int) -> list[dict[str, float]]:
    """Trial 0 = ``base``; then every other grid point in a seeded random order."""
    first = _base_settings(base, space)
    keys = list(space)
    grid = [dict(zip(keys, map(float, point), strict=True)) for point in itertools.product(*space.values())]
    others = [point for point in grid if point != first]
    random.Random(seed).shuffle(others)
    return [first, *others]


def tune_retriever(dataset: PreparedDataset, out_dir: str | Path, base: RetrieverConfig | None = None, *,
                   max_minutes: float | None = 60.0, max_trials: int | None = None, seed: int = 0,
                   device: str = "cpu", force: bool = False, resume: bool = False,
                   show_progress: bool = False,
                   space: dict[str, tuple[float, ...]] | None = None,
                   log: Callable[[str], None] | None = None) -> TuneReport:
    """Run the search into ``<out>.trials/`` and write the selected model's folder to ``out_dir``.

    ``resume`` continues the search in ``<out>.trials/`` (see the module docstring); ``log`` receives a line
    when a trial starts, one per epoch, and one when it ends.
    """
    base = base or RetrieverConfig()
    space = dict(space or DEFAULT_SPACE)
    out = Path(out_dir)
    trials_root = out.parent / f"{out.name}.trials"
    check_device(device)
    if max_trials is not None and max_trials < 1:
        raise RetrieverError(f"--max-trials must be at least 1, got {max_trials}")
    identity = {"name": dataset.manifest.name, "split_sha256": dataset.manifest.split_sha256,
                "n_items": dataset.n_items}
    plan = TunePlan(base=base.model_dump(mode="json"), seed=seed, dataset=identity,
                    space={k: [float(x) for x in v] for k, v in space.items()})
    with folder_lock(out), folder_lock(trials_root):
        check_writable(out, force=force)
        if resume:
            _check_plan(trials_root, plan)
        else:
            check_writable(trials_root, force=force)
            if trials_root.exists():
                shutil.rmtree(trials_root)
            trials_root.mkdir(parents=True)
            atomic_write_json(trials_root / PLAN_FILE, plan.model_dump(mode="json"))
        trials = _search(dataset, base, trials_root, space, max_minutes=max_minutes, max_trials=max_trials,
                         seed=seed, device=device, show_progress=show_progress, log=log)
        scored = [t for t in trials if t.valid_score is not None]
        if not scored:
            raise RetrieverError("no trial reached a validation (raise --max-minutes)", path=trials_root)
        best = max(scored, key=lambda t: (t.valid_score, -t.index))
        retriever, config, _ = load_retriever(best.folder, device=device)
        report = TuneReport(max_minutes=max_minutes, seed=seed, space={k: list(v) for k, v in space.items()},
                            trials=trials, best=best.index, dataset=identity)
        with atomic_dir(out, force=force) as tmp:
            for name in (MODEL_FILE, CONFIG_FILE):
                shutil.copy2(Path(best.folder) / name, tmp / name)
            write_evaluation(dataset, retriever, tmp, config.candidates,
                             eval_batch_size=config.train.eval_batch_size,
                             training={"tuned": True, "trial": best.index, "settings": best.settings})
            atomic_write_json(tmp / TUNE_FILE, report.model_dump(mode="json"))
    return report


def _check_plan(root: Path, plan: TunePlan) -> None:
    """Refuse, in one line, to resume a search that is missing or not the same as ``plan``."""
    path = root / PLAN_FILE
    if not path.is_file():
        raise RetrieverError("nothing to resume here (no plan.json); run without --resume", path=root)
    saved = read_json_model(path, TunePlan)
    for field in ("dataset", "seed", "space", "base"):
        if getattr(saved, field) != getattr(plan, field):
            what = {"dataset": "the dataset (split_sha256)", "seed": "--seed", "space": "the searched grid",
                    "base": "the base config (--config)"}[field]
            raise RetrieverError(f"cannot resume: {what} differs from the search started here; "
                                 "run with --force to start anew", path=root)


def _search(dataset: PreparedDataset, base: RetrieverConfig, root: Path, space: dict[str, tuple[float, ...]],
            *, max_minutes: float | None, max_trials: int | None, seed: int, device: str,
            show_progress: bool, log: Callable[[str], None] | None = None) -> list[TuneTrial]:
    def say(line: str) -> None:
        if log is not None:
            log(line)

    start = time.monotonic()
    budget = None if max_minutes is None else 60.0 * max_minutes
    trials: list[TuneTrial] = []
    before = 0.0      # seconds spent by trials finished in an earlier (killed) process
    for index, settings in enumerate(trial_settings(base, space, seed)):
        if max_trials is not None and index >= max_trials:
            break
        folder = root / f"{index:03d}"
        record = folder / TRIAL_FILE
        if record.is_file():      # finished before a kill: kept as it is
            trial = read_json_model(record, TuneTrial)
            trials.append(trial)
            before += trial.seconds
            say(f"trial {index}: finished before (valid {SELECTION_METRIC} {trial.valid_score})")
            continue
        used = before + time.monotonic() - start
        if budget is not None and trials:
            mean = used / len(trials)
            if used + mean > budget:
                break
        config = apply_settings(base, settings)
        if budget is not None:
            left_minutes = max((budget - used) / 60.0, 1e-3)
            own = config.train.max_minutes
            config = config.model_copy(update={"train": config.train.model_copy(
                update={"max_minutes": min(own, left_minutes) if own else left_minutes})})
        continuing = (folder / CHECKPOINT_NAME).is_file()
        if folder.exists() and not continuing:
            shutil.rmtree(folder)     # killed before its first checkpoint: start the trial again
        earlier = _elapsed(folder) if continuing else 0.0
        began = time.monotonic()
        say(f"trial {index}: {settings}" + (" (continuing from its checkpoint)" if continuing else ""))
        epoch_log = (lambda line, i=index: say(f"  trial {i} {line}")) if log else None
        try:
            run = train_retriever(dataset, folder, config, device=device, show_progress=show_progress,
                                  write_outputs=False, epoch_log=epoch_log, resume=continuing)
        except RetrieverError as exc:
            if "training diverged" not in str(exc):
                raise
            trial = TuneTrial(index=index, settings=settings, valid_score=None, best_epoch=0, epochs_run=0,
                              stop_reason="diverged", seconds=round(earlier + time.monotonic() - began, 3),
                              folder=str(folder))
            say(f"trial {index}: diverged ({exc})")
        else:
            p = run.progress
            trial = TuneTrial(index=index, settings=settings, valid_score=p.best_score,
                              best_epoch=p.best_epoch, epochs_run=p.epoch, stop_reason=p.stop_reason,
                              seconds=round(earlier + time.monotonic() - began, 3), folder=str(folder))
            best = "-" if p.best_score is None else f"{p.best_score:.4f}"
            say(f"trial {index}: valid {SELECTION_METRIC} {best} at epoch {p.best_epoch} of {p.epoch} "
                f"({p.stop_reason}), {trial.seconds:.0f}s")
        if folder.is_dir():
            atomic_write_json(record, trial.model_dump(mode="json"))
        trials.append(trial)
    return trials


def _elapsed(folder: Path) -> float:
    """Training seconds a killed trial had spent (its checkpoint's progress), 0 when unreadable."""
    try:
        text = (folder / Path(CHECKPOINT_NAME).with_suffix(".json").name).read_text(encoding="utf-8")
        state = json.loads(text)
        return float(state.get("progress", state).get("elapsed_seconds", 0.0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0.0
