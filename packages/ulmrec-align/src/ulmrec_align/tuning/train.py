"""``ulmrec align train`` as a function: LoRA/QLoRA tuning of a causal LM on alignment samples.

Flow (each step a function, so that a multi-process launch can split them):

1. :func:`prepare_run` (one process): check the inputs, create ``T.partial/`` (checkpoints, best adapters,
   ``run.json`` = the planned :class:`TrainManifest`) or, with ``--resume``, check that ``run.json`` matches.
2. :func:`train_in_process` (every process): Hugging Face ``Trainer`` + peft LoRA, loss on response tokens
   only (logits only where a loss is taken; ``--loss letters``: over the candidate letters), a schedule
   sized to the run that actually happens (steps or time budget), validation NDCG@10 of calibrated scores
   on shuffled letters with early stopping; writes ``T.partial/result.json`` at the end.
3. :func:`finalize` (one process): ``T/`` = ``adapter/`` (the best validation adapter, safetensors),
   ``tokenizer/`` (with added code tokens) and ``train_manifest.json``, built in a temporary sibling and
   renamed into place; then ``T.partial/`` is removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ulmrec_align.models.errors import ModelError, missing_extra
from ulmrec_align.tuning.config import (
    ADAPTER_DIR,
    BEST_PREFIX,
    RANKING_TASKS,
    TRAIN_MANIFEST,
    BaseModelInfo,
    LoraSettings,
    TrainManifest,
    TrainSettings,
)
from ulmrec_eval.artifacts import atomic_dir, check_writable, folder_lock, sha256_file
from ulmrec_eval.errors import InputError
from ulmrec_eval.io import atomic_write_text, read_json_model

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
TOKENIZER_DIR = "tokenizer"
FINAL_ADAPTER = "final-adapter"
#: Set in the processes started by a multi-process launch (the launcher holds the lock and does 1 and 3).
WORKER_ENV = "ULMREC_TRAIN_WORKER"
#: Settings that may differ between a run and its --resume (they do not change what a step computes).
_RESUMABLE_CHANGES = {"max_minutes", "max_steps", "epochs", "patience", "keep_checkpoints", "eval_batch_size"}



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


def _versions() -> dict[str, str]:
    try:
        from ulmrec_eval.stage import package_versions
    except ImportError:
        return {}
    return package_versions(("ulmrec-align", "torch", "transformers", "peft", "accelerate", "bitsandbytes"))


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(module, f"{type(exc).__name__}: {exc}") from None


def plan(request: TrainRequest) -> TrainManifest:
    """The manifest this request would produce, before training (inputs resolved and hashed)."""
    from ulmrec_align.models.loading import check_device, resolve_quantization
    from ulmrec_align.models.resolve import model_identity, resolve_model
    from ulmrec_align.tasks.schema import MANIFEST, read_manifest

    samples = read_manifest(request.samples)
    check_device(request.train.device)
    resolved = resolve_model(request.model)
    return TrainManifest(
        base_model=BaseModelInfo(name=request.model, path=str(resolved), identity=model_identity(resolved)),
        samples_path=str(Path(request.samples).absolute()),
        samples_manifest_sha256=sha256_file(Path(request.samples) / MANIFEST),
        samples_files_sha256={name: sha256_file(Path(request.samples) / name)
                              for name in ("train.jsonl", "valid.jsonl")
                              if (Path(request.samples) / name).is_file()},
        samples_config=samples.config.model_dump(mode="json"), prompt=samples.config.prompt,
        index_tokens=samples.config.index_tokens, lora=request.lora, train=request.train,
        quantization=resolve_quantization(request.train.quantization, request.train.device),
        device=request.train.device, world_size=request.train.num_processes, train_samples=0, valid_samples=0,
        index_sha256=samples.inputs.index_sha256, versions=_versions())


def _check_resumable(planned: TrainManifest, previous: TrainManifest, run: Path) -> None:
    checks = {
        "base model": (planned.base_model.identity, previous.base_model.identity),
        "samples": (planned.samples_manifest_sha256, previous.samples_manifest_sha256),
        "sample files": (planned.samples_files_sha256,
                         previous.samples_files_sha256 or planned.samples_files_sha256),
        "LoRA settings": (planned.lora, previous.lora),
        "quantization": (planned.quantization, previous.quantization),
        "processes": (planned.world_size, previous.world_size),
    }
    for field in TrainSettings.model_fields:
        if field not in _RESUMABLE_CHANGES:
            option = f"--{field.replace('_', '-')}"
            checks[option] = (getattr(planned.train, field), getattr(previous.train, field))
    for what, (now, then) in checks.items():
        if now != then:
            raise InputError(f"cannot resume: {what} differ from the interrupted run ({then} then, {now} "
                             "now); start over with --force", path=run / RUN_FILE)


def prepare_run(request: TrainRequest) -> TrainManifest:
    """Step 1: check inputs and the output folders; create or check ``T.partial``. Returns the plan."""
    from ulmrec_align.tuning.checkpoints import remove_staging
    from ulmrec_align.tuning.inputs import check_training_inputs

    planned = plan(request)
    run = partial_dir(request.out)
    check_writable(request.out, force=request.force or request.resume)
    check_training_inputs(Path(request.samples), model_path=planned.base_model.path,
                          index_tokens=planned.index_tokens, max_length=request.train.max_length)
    if request.resume:
        if not (run / RUN_FILE).is_file():
            raise InputError(f"nothing to resume: no interrupted run at {run}; run without --resume")
        _check_resumable(planned, read_json_model(run / RUN_FILE, TrainManifest), run)
        remove_staging(run)
    else:
        if run.exists():
            if not request.force:
                raise InputError(f"{run} holds an interrupted run: continue it with --resume, or start over "
                                 "with --force")
            shutil.rmtree(run)
        run.mkdir(parents=True)
        atomic_write_text(run / RUN_FILE, planned.model_dump_json(indent=2) + "\n")
    return planned


def validation_samples(samples_dir: Path, limit: int | None) -> list[Any]:
    """The first ``limit`` validation samples of a ranking task (lettered candidates with a target)."""
    from ulmrec_align.tasks.schema import read_samples

    if not (Path(samples_dir) / "valid.jsonl").is_file():
        return []
    rows = [s for s in read_samples(samples_dir, "valid")
            if s.task in RANKING_TASKS and s.candidates and s.target_letter]
    return rows[:limit] if limit is not None else rows


def letter_prior(scores: Any) -> Any:
    """Per-letter log-probability prior: the mean over rows of ``log_softmax`` of each row's letter scores
    (rows (n, L), ``-inf`` past a row's letters; a letter is averaged over the rows that have it).

    On prompts whose candidates sit at random letters, a candidate's content is independent of its letter, so
    the mean log-probability of a letter is its content-free preference (PriDe, Zheng et al. 2024).
    """
    import numpy as np

    from ulmrec_align.ranking.scorer import letter_log_probs

    logp = letter_log_probs(scores)
    finite = np.isfinite(logp)
    counts = finite.sum(axis=0)
    total = np.where(finite, logp, 0.0).sum(axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), 0.0)


def ranking_validator(tokenizer: Any, samples: Sequence[Any], *, index_tokens: str,
                      batch_size: int) -> Any:
    """``validate(model) -> ValidationScores``: NDCG@10 of the letter ranking of ``samples`` after removing
    the letter prior estimated on the same prompts (:func:`letter_prior`; the samples show their candidates
    in a shuffled order, so neither a letter preference nor the retriever's order is rewarded), the
    uncalibrated NDCG@10, and the prior."""
    import numpy as np

    from ulmrec_align.prompts.letters import letter_index
    from ulmrec_align.ranking.scorer import letter_log_probs, ndcg_at, score_samples
    from ulmrec_align.tuning.callbacks import ValidationScores

    targets = [letter_index(s.target_letter) for s in samples]

    def validate(model: Any) -> ValidationScores:
        scores = score_samples(model, tokenizer, samples, index_tokens=index_tokens,  # type: ignore[arg-type]
                               batch_size=batch_size)
        prior = letter_prior(scores)
        logp = letter_log_probs(scores)
        calibrated = np.where(np.isfinite(logp), logp - prior[None, :], -np.inf)
        return ValidationScores(score=ndcg_at(calibrated, targets, 10), raw=ndcg_at(scores, targets, 10),
                                prior=[round(float(v), 6) for v in prior])

    return validate


def _distributed() -> tuple[int, int, int]:
    """(rank, local rank, world size) from the launcher's environment."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")))


def train_in_process(request: TrainRequest, planned: TrainManifest, *, callbacks: Sequence[Any] = (),
                     validator: Any = None) -> TrainManifest | None:
    """Step 2 (every process): train; the main process writes ``result.json``; returns it there, else None.

    ``validator``: ``validate(model) -> float`` to use instead of the ranking NDCG@10 (None = default;
    ``False`` = no validation).
    """
    _require("peft")
    _require("accelerate")
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import PrinterCallback, TrainingArguments, set_seed

    from ulmrec_align.models.loading import load_causal_lm
    from ulmrec_align.prompts.encoding import letter_token_ids
    from ulmrec_align.tasks.schema import read_samples
    from ulmrec_align.tuning.callbacks import StopRequest, TrainingInterrupted, TuningCallback
    from ulmrec_align.tuning.checkpoints import (
        best_adapters,
        checkpoints,
        prune,
        read_progress,
        save_adapter_atomically,
    )
    from ulmrec_align.tuning.data import PadCollator, encode_samples
    from ulmrec_align.tuning.inputs import prepared_tokenizer
    from ulmrec_align.tuning.schedule import BudgetSchedule
    from ulmrec_align.tuning.trainer import LlmTuner

    settings, run = request.train, partial_dir(request.out)
    rank, local_rank, world = _distributed()
    is_main = rank == 0
    tokenizer, added = prepared_tokenizer(planned.base_model.path, Path(request.samples),
                                          planned.index_tokens)
    train_rows = read_samples(request.samples, "train")
    if not train_rows:
        raise InputError("no training samples in train.jsonl", path=request.samples)
    dataset, encoding = encode_samples(tokenizer, train_rows, index_tokens=planned.index_tokens,
                                       max_length=settings.max_length)
    n_letters = max((int(r["n_letters"]) for r in dataset.rows), default=0)
    letters = letter_token_ids(tokenizer, max(n_letters, 1))
    valid_rows = validation_samples(request.samples, settings.valid_users) if validator is not False else []
    if validator is None and valid_rows:
        validator = ranking_validator(tokenizer, valid_rows, index_tokens=planned.index_tokens,
                                      batch_size=settings.eval_batch_size)
    device = settings.device if not settings.device.startswith("cuda") or world == 1 else f"cuda:{local_rank}"

    set_seed(settings.seed)  # LoRA's initial weights
    model = load_causal_lm(planned.base_model.path, quantization=planned.quantization, device=device)
    if added:
        model.resize_token_embeddings(len(tokenizer))
    gc_kwargs = {"use_reentrant": False}
    if planned.quantization == "nf4":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=settings.checkpointing,
            gradient_checkpointing_kwargs=gc_kwargs)
    trainable_tokens: dict[str, list[int]] | None = None
    if added:
        trainable_tokens = {"embed_tokens": added}
        if not model.config.tie_word_embeddings:
            trainable_tokens["lm_head"] = added
    lora = LoraConfig(r=request.lora.r, lora_alpha=request.lora.alpha,  # type: ignore[arg-type]
                      lora_dropout=request.lora.dropout,
                      target_modules=(request.lora.targets[0] if list(request.lora.targets) == ["all-linear"]
                                      else list(request.lora.targets)), task_type="CAUSAL_LM",
                      trainable_token_indices=trainable_tokens)
    try:
        model = get_peft_model(model, lora)  # type: ignore[assignment]
    except ValueError as exc:
        raise ModelError(f"cannot apply LoRA to {planned.base_model.name}: {exc}") from None

    on_cpu = settings.device == "cpu"
    args = TrainingArguments(
        output_dir=str(run), per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum, learning_rate=settings.lr,
        weight_decay=settings.weight_decay, max_grad_norm=settings.max_grad_norm,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps or -1,
        logging_steps=max(1, min(10, settings.validate_every)), save_strategy="steps",
        save_steps=settings.save_steps, save_total_limit=None, eval_strategy="no", report_to="none",
        seed=settings.seed, data_seed=settings.seed, activation_checkpointing=settings.checkpointing,
        activation_checkpointing_kwargs=gc_kwargs,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        remove_unused_columns=False, include_num_input_tokens_seen="non_padding", use_cpu=on_cpu,
        bf16=not on_cpu and planned.quantization == "none",
        ddp_backend=("gloo" if on_cpu else "nccl") if world > 1 else None,
        ddp_find_unused_parameters=False, disable_tqdm=not request.progress, dataloader_num_workers=0,
        restore_callback_states_from_checkpoint=False)

    trainer: Any = None
    max_seconds = None if settings.max_minutes is None else settings.max_minutes * 60
    stop = StopRequest()
    callback = TuningCallback(run_dir=run, validate=validator or None, every=settings.validate_every,
                              patience=settings.patience, max_seconds=max_seconds, is_main=is_main,
                              samples_counter=lambda: trainer.samples_local, world_size=world,
                              task_losses=lambda: trainer.pop_task_losses(), stop=stop)
    schedule = BudgetSchedule(kind=settings.scheduler, max_steps=1, warmup_steps=settings.warmup_steps,
                              budget_seconds=max_seconds, clock=callback.elapsed)
    trainer = LlmTuner(model=model, args=args, train_dataset=dataset,
                       data_collator=PadCollator(pad_id=int(tokenizer.pad_token_id)),
                       processing_class=tokenizer, callbacks=[callback, *callbacks],
                       keep_checkpoints=settings.keep_checkpoints, loss_kind=settings.loss,
                       letter_ids=letters,
                       schedule=schedule, task_names=dataset.tasks)
    trainer.progress_source = lambda: callback.snapshot(trainer.state.global_step)
    if not request.progress or not is_main:  # no per-log dicts on stdout; events and the summary line remain
        trainer.remove_callback(PrinterCallback)

    resume_from = None
    if request.resume:
        found = checkpoints(run)
        if found:
            resume_from = found[-1][1]
            callback.restore(read_progress(resume_from))
            if is_main:
                prune(run, keep=settings.keep_checkpoints, current_best=callback.progress.best_step)
        elif is_main:
            for path in best_adapters(run).values():  # killed before the first checkpoint: start over
                shutil.rmtree(path, ignore_errors=True)
    with stop.installed():
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if stop.requested:
        raise TrainingInterrupted(trainer.state.global_step)

    final = callback.snapshot(trainer.state.global_step)
    if not final.stop_reason:
        final.stop_reason = "max steps" if settings.max_steps else "epochs done"
    result = planned.model_copy(update={
        "added_token_ids": added, "world_size": world, "train_samples": len(dataset),
        "valid_samples": len(valid_rows) if validator else 0, "steps": trainer.state.global_step,
        "samples_seen": final.samples_seen, "tokens_seen": int(trainer.state.num_input_tokens_seen or 0),
        "elapsed_seconds": round(final.elapsed_seconds, 3), "best_step": final.best_step,
        "best_ndcg_at_10": final.best_score, "history": final.history, "curve": final.curve,
        "letter_prior": final.best_prior, "prompts_cut": encoding.cut, "stop_reason": final.stop_reason,
        "status": "complete"})
    trainer.accelerator.wait_for_everyone()
    if not is_main:
        return None
    if final.best_step is None:
        save_adapter_atomically(model, run / FINAL_ADAPTER)
    tmp = run / f".tmp-{TOKENIZER_DIR}"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(run / TOKENIZER_DIR, ignore_errors=True)
    os.rename(tmp, run / TOKENIZER_DIR)
    atomic_write_text(run / RESULT_FILE, result.model_dump_json(indent=2) + "\n")
    return result


def finalize(request: TrainRequest) -> TrainManifest:
    """Step 3: build ``T/`` whole from ``T.partial/`` (adapter, tokenizer, manifest); drop the partial."""
    run = partial_dir(request.out)
    result = read_json_model(run / RESULT_FILE, TrainManifest)
    best = result.best_step
    adapter = run / (f"{BEST_PREFIX}{best}" if best is not None else FINAL_ADAPTER)
    if not adapter.is_dir():
        raise InputError(f"the adapter to keep ({adapter.name}) is missing; start over with --force",
                         path=run)
    with atomic_dir(request.out, force=True, lock=False) as tmp:
        shutil.copytree(adapter, tmp / ADAPTER_DIR)
        shutil.copytree(run / TOKENIZER_DIR, tmp / TOKENIZER_DIR)
        atomic_write_text(tmp / TRAIN_MANIFEST, result.model_dump_json(indent=2) + "\n")
    shutil.rmtree(run, ignore_errors=True)
    return result


def run_training(request: TrainRequest, *, callbacks: Sequence[Any] = (),
                 validator: Any = None) -> TrainManifest:
    """Prepare, train (here, or in ``num_processes`` processes), finalize; holds a lock on ``T``."""
    if os.environ.get(WORKER_ENV):
        raise RuntimeError("run_training is for the launching process; workers call train_in_process")
    with folder_lock(request.out):
        run = partial_dir(request.out)
        complete = Path(request.out) / TRAIN_MANIFEST
        if request.resume and complete.is_file() and not (run / RUN_FILE).is_file():
            return read_json_model(complete, TrainManifest)  # killed after finishing: nothing left to do
        planned = prepare_run(request)
        if not (request.resume and (run / RESULT_FILE).is_file()):  # else: killed while finalizing
            try:
                if request.train.num_processes > 1:
                    from ulmrec_align.tuning.launch import launch_workers

                    launch_workers(request)
                else:
                    train_in_process(request, planned, callbacks=callbacks, validator=validator)
            except BaseException:
                _discard_if_nothing_kept(run, resumed=request.resume)
                raise
        return finalize(request)


def _discard_if_nothing_kept(run: Path, *, resumed: bool) -> None:
    """Remove ``T.partial`` of a fresh run that ended before its first checkpoint (nothing to resume)."""
    from ulmrec_align.tuning.checkpoints import checkpoints

    if not resumed and not checkpoints(run):
        shutil.rmtree(run, ignore_errors=True)
