"""The training loop of one process (:func:`train_in_process`): Hugging Face ``Trainer`` + peft LoRA, loss
on response tokens only (logits only where a loss is taken; ``--loss letters``: over the candidate letters),
a schedule sized to the run that actually happens (steps or time budget), validation NDCG@10 of calibrated
scores on shuffled letters with early stopping, a checkpoint on SIGINT/SIGTERM. The orchestration around it
(prepare, launch, finalize) is :mod:`ulmrec_align.tuning.run`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ulmrec_align.models.errors import ModelError, missing_extra
from ulmrec_align.tuning.config import TrainManifest
from ulmrec_align.tuning.request import FINAL_ADAPTER, RESULT_FILE, TOKENIZER_DIR, TrainRequest, partial_dir
from ulmrec_align.tuning.validation import ranking_validator, validation_samples
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_text


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(module, f"{type(exc).__name__}: {exc}") from None


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
