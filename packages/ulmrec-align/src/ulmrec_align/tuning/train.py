"""The training loop of one process (:func:`train_in_process`): Hugging Face ``Trainer`` + peft LoRA, loss
on response tokens only (logits only where a loss is taken; ``--loss``: the registered loss of that name,
:mod:`ulmrec_align.losses`),
a schedule sized to the run that actually happens (steps or time budget), validation NDCG@10 of calibrated
scores on shuffled letters with early stopping, a checkpoint on SIGINT/SIGTERM. The orchestration around it
(prepare, launch, finalize) is :mod:`ulmrec_align.tuning.run`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ulmrec_align.losses.registry import get_loss, pairing_error
from ulmrec_align.models.errors import ModelError, missing_extra
from ulmrec_align.models.train_manifest import TOKENIZER_DIR
from ulmrec_align.tuning.config import TrainManifest
from ulmrec_align.tuning.request import FINAL_ADAPTER, RESULT_FILE, TrainRequest, partial_dir
from ulmrec_align.tuning.validation import (
    code_samples,
    ranking_validator,
    validation_samples,
)
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_text

_GC_KWARGS = {"use_reentrant": False}


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


@dataclass
class _Inputs:
    """The encoded training set and what goes with it."""

    tokenizer: Any
    added: list[int]
    dataset: Any
    prompts_cut: int
    letters: list[int]
    valid_rows: list[Any]
    validator: Any
    yes_no: tuple[int, int] | None = None
    prior_weight: float | None = None   # β of --retriever-prior (None: the LLM trained alone)


def _load_inputs(request: TrainRequest, planned: TrainManifest, validator: Any) -> _Inputs:
    """Step 2a: tokenizer (with added code tokens), encoded training samples, letter ids, validator."""
    from ulmrec_align.prompts.answers.registry import get_answer
    from ulmrec_align.prompts.encoding import letter_token_ids, relevance_token_ids
    from ulmrec_align.tasks.schema import read_samples
    from ulmrec_align.tuning.data import DrawSampler, encode_samples
    from ulmrec_align.tuning.inputs import prepared_tokenizer

    settings = request.train
    tokenizer, added = prepared_tokenizer(planned.base_model.path, Path(request.samples),
                                          planned.index_tokens)
    train_rows = read_samples(request.samples, "train")
    if not train_rows:
        raise InputError("no training samples in train.jsonl", path=request.samples)
    answer, loss = planned.prompt.answer, get_loss(settings.loss)
    refused = pairing_error(answer, loss.name)
    if refused is not None:
        raise InputError(refused, path=request.samples)
    dataset, encoding = encode_samples(tokenizer, train_rows, index_tokens=planned.index_tokens,
                                       max_length=settings.max_length, answer=answer)
    if dataset.redrawn:   # one draw of negatives per epoch (DrawSampler); checked before the model loads
        if settings.group_by_length:
            raise InputError("--group-by-length cannot keep one draw of negatives per epoch (the samples "
                             "were built with --negative-draws > 1): drop it, or rebuild with "
                             "--negative-draws 1",
                             path=request.samples)
        DrawSampler.of(dataset, seed=settings.seed)
    n_letters = max((int(r["n_letters"]) for r in dataset.rows), default=0)
    if loss.pools and get_answer(answer).per_candidate and not any("choice_ids" in r for r in dataset.rows):
        raise InputError(f"--loss {settings.loss}: no training sample carries its pool; rebuild the samples "
                         f"with this version's `ulmrec align build --answer {answer}`", path=request.samples)
    prior = _prior_weight(request, train_rows)
    valid_rows = validation_samples(request.samples, settings.valid_users) if validator is not False else []
    if validator is None and valid_rows:
        ordered = planned.samples_config.get("valid_order") == "retriever"
        codes = settings.code_valid_users
        validator = ranking_validator(tokenizer, valid_rows, index_tokens=planned.index_tokens, answer=answer,
                                      ordered=ordered,
                                      batch_size=settings.eval_batch_size,
                                      code=code_samples(request.samples,
                                                         min(settings.valid_users or codes, codes))
                                      if codes else [])
    return _Inputs(tokenizer=tokenizer, added=added, dataset=dataset, prompts_cut=encoding.cut,
                   letters=letter_token_ids(tokenizer, max(n_letters, 1)), valid_rows=valid_rows,
                   validator=validator,
                   yes_no=relevance_token_ids(tokenizer) if loss.yes_no else None, prior_weight=prior)


def _prior_weight(request: TrainRequest, train_rows: Sequence[Any]) -> float | None:
    """``--retriever-prior``: β (fitted on the validation pools when ``auto``), or None when it is 0.
    Refused unless the loss is ``relevance`` and every training pool carries the retriever's scores."""
    from ulmrec_align.ranking.fusion import prior_weight

    settings = request.train
    if settings.retriever_prior == 0:
        return None
    if settings.loss != "relevance":
        raise InputError(f"--retriever-prior adds the retriever's scores to the relevance loss; not to "
                         f"--loss {settings.loss}", path=request.samples)
    pools = [s for s in train_rows if s.choices and s.candidates]
    if not pools or any(s.retriever_scores is None for s in pools):
        raise InputError("--retriever-prior: the training pools do not carry the retriever's scores; rebuild "
                         "the samples with this version's `ulmrec align build --answer relevance --negatives "
                         "retriever`", path=request.samples)
    if settings.retriever_prior != "auto":
        return float(settings.retriever_prior)
    valid = [s for s in validation_samples(request.samples, settings.valid_users)
             if s.retriever_scores is not None and s.target in (s.candidates or [])]
    if not valid:
        raise InputError("--retriever-prior auto fits β on the validation pools, and no validation sample "
                         "carries the retriever's scores", path=request.samples)
    return prior_weight([s.retriever_scores for s in valid], [s.candidates.index(s.target) for s in valid])


def _lora_model(request: TrainRequest, planned: TrainManifest, inputs: _Inputs, device: str) -> Any:
    """Step 2b: the base model (quantized when asked, embeddings resized for added tokens) with LoRA."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    from ulmrec_align.models.loading import load_causal_lm

    settings = request.train
    set_seed(settings.seed)  # LoRA's initial weights
    model = load_causal_lm(planned.base_model.path, quantization=planned.quantization, device=device)
    if inputs.added:
        model.resize_token_embeddings(len(inputs.tokenizer))
    if planned.quantization == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.checkpointing,
                                                gradient_checkpointing_kwargs=_GC_KWARGS)
    trainable_tokens: dict[str, list[int]] | None = None
    if inputs.added:
        trainable_tokens = {"embed_tokens": inputs.added}
        if not model.config.tie_word_embeddings:
            trainable_tokens["lm_head"] = inputs.added
    targets = list(request.lora.targets)
    layers = _top_layers(model, request.lora.top_layers, planned.base_model.name)
    lora = LoraConfig(r=request.lora.r, lora_alpha=request.lora.alpha,  # type: ignore[arg-type]
                      lora_dropout=request.lora.dropout,
                      target_modules=targets[0] if targets == ["all-linear"] else targets,
                      layers_to_transform=layers,
                      task_type="CAUSAL_LM", trainable_token_indices=trainable_tokens)
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ModelError(f"cannot apply LoRA to {planned.base_model.name}: {exc}") from None


def _top_layers(model: Any, top: int | None, name: str) -> list[int] | None:
    """Indices of the top ``top`` decoder layers (``None``: every layer gets adapters)."""
    if top is None:
        return None
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    total = int(getattr(config, "num_hidden_layers", 0) or 0)
    if not 1 <= top <= total:
        raise ModelError(f"--lora-top-layers {top}: {name} has {total} decoder layers")
    return list(range(total - top, total))


def _checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """Activation recompute as this transformers names it: ``activation_checkpointing`` (5.2x and later) or
    ``gradient_checkpointing`` (earlier 5.x, 4.x)."""
    from dataclasses import fields

    from transformers import TrainingArguments

    prefix = ("activation" if "activation_checkpointing" in {f.name for f in fields(TrainingArguments)}
              else "gradient")
    return {f"{prefix}_checkpointing": enabled, f"{prefix}_checkpointing_kwargs": _GC_KWARGS}


def _training_arguments(request: TrainRequest, planned: TrainManifest, world: int) -> Any:
    """Step 2c: the ``TrainingArguments`` of these settings."""
    from transformers import TrainingArguments

    settings, on_cpu = request.train, request.train.device == "cpu"
    return TrainingArguments(
        output_dir=str(partial_dir(request.out)), per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum, learning_rate=settings.lr,
        weight_decay=settings.weight_decay, max_grad_norm=settings.max_grad_norm,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps or -1,
        logging_steps=max(1, min(10, settings.validate_every)), save_strategy="steps",
        save_steps=settings.save_steps, save_total_limit=None, eval_strategy="no", report_to="none",
        seed=settings.seed, data_seed=settings.seed, **_checkpointing_arguments(settings.checkpointing),
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        remove_unused_columns=False, include_num_input_tokens_seen="non_padding", use_cpu=on_cpu,
        logging_nan_inf_filter=False,   # a NaN step must show in the logged loss (TrainingDivergedError)
        bf16=not on_cpu and planned.quantization == "none",
        ddp_backend=("gloo" if on_cpu else "nccl") if world > 1 else None,
        ddp_find_unused_parameters=False, disable_tqdm=not request.progress, dataloader_num_workers=0,
        restore_callback_states_from_checkpoint=False)


def _collator(tokenizer: Any, *, loss: str, prior_weight: float = 0.0) -> Any:
    """Left-padding batches; with the pools under a loss that reads them (``choices``: with the content-free
    title prompt too; ``relevance``: the pools' continuations, and ``β · z(retriever)`` with β > 0)."""
    from ulmrec_align.ranking.ranker import null_title_prompt
    from ulmrec_align.tuning.data import PadCollator

    spec = get_loss(loss)
    return PadCollator(pad_id=int(tokenizer.pad_token_id), choices=spec.pools,
                       null_prompt=tuple(null_title_prompt(tokenizer)) if spec.null_prompt else None,
                       prior_weight=prior_weight)


def _resume_point(request: TrainRequest, callback: Any, *, is_main: bool) -> Path | None:
    """Step 2d: the newest checkpoint to continue from (its progress restored into ``callback``), or None."""
    from ulmrec_align.tuning.checkpoints import best_adapters, checkpoints, prune, read_progress

    if not request.resume:
        return None
    run = partial_dir(request.out)
    found = checkpoints(run)
    if found:
        callback.restore(read_progress(found[-1][1]))
        if is_main:
            prune(run, keep=request.train.keep_checkpoints, current_best=callback.progress.best_step)
        return found[-1][1]
    if is_main:
        for path in best_adapters(run).values():  # killed before the first checkpoint: start over
            shutil.rmtree(path, ignore_errors=True)
    return None


def _write_result(request: TrainRequest, model: Any, tokenizer: Any, result: TrainManifest) -> None:
    """Step 2e (main process): the last adapter when none was kept by validation, the tokenizer, and
    ``result.json``, each written whole."""
    from ulmrec_align.tuning.checkpoints import save_adapter_atomically

    run = partial_dir(request.out)
    if result.best_step is None:
        save_adapter_atomically(model, run / FINAL_ADAPTER)
    tmp = run / f".tmp-{TOKENIZER_DIR}"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(run / TOKENIZER_DIR, ignore_errors=True)
    os.rename(tmp, run / TOKENIZER_DIR)
    atomic_write_text(run / RESULT_FILE, result.model_dump_json(indent=2) + "\n")


def train_in_process(request: TrainRequest, planned: TrainManifest, *, callbacks: Sequence[Any] = (),
                     validator: Any = None) -> TrainManifest | None:
    """Step 2 (every process): train; the main process writes ``result.json``; returns it there, else None.

    ``validator``: ``validate(model) -> float`` to use instead of the ranking NDCG@10 (None = default;
    ``False`` = no validation).
    """
    _require("peft")
    _require("accelerate")
    from transformers import PrinterCallback

    from ulmrec_align.tuning.callbacks import StopRequest, TrainingInterrupted, TuningCallback
    from ulmrec_align.tuning.schedule import BudgetSchedule
    from ulmrec_align.tuning.trainer import LlmTuner

    settings, run = request.train, partial_dir(request.out)
    rank, local_rank, world = _distributed()
    is_main = rank == 0
    inputs = _load_inputs(request, planned, validator)
    device = settings.device if not settings.device.startswith("cuda") or world == 1 else f"cuda:{local_rank}"
    model = _lora_model(request, planned, inputs, device)

    trainer: Any = None
    max_seconds = None if settings.max_minutes is None else settings.max_minutes * 60
    stop = StopRequest()
    callback = TuningCallback(run_dir=run, validate=inputs.validator or None, every=settings.validate_every,
                              patience=settings.patience, max_seconds=max_seconds, is_main=is_main,
                              samples_counter=lambda: trainer.samples_local, world_size=world,
                              task_losses=lambda: trainer.pop_task_losses(), stop=stop)
    schedule = BudgetSchedule(kind=settings.scheduler, max_steps=1, warmup_steps=settings.warmup_steps,
                              budget_seconds=max_seconds, clock=callback.elapsed)
    trainer = LlmTuner(model=model, args=_training_arguments(request, planned, world),
                       train_dataset=inputs.dataset,
                       data_collator=_collator(inputs.tokenizer, loss=settings.loss,
                                               prior_weight=inputs.prior_weight or 0.0),
                       processing_class=inputs.tokenizer, callbacks=[callback, *callbacks],
                       keep_checkpoints=settings.keep_checkpoints, loss_kind=settings.loss,
                       letter_ids=inputs.letters, schedule=schedule, task_names=inputs.dataset.tasks,
                       yes_no=inputs.yes_no)
    trainer.progress_source = lambda: callback.snapshot(trainer.state.global_step)
    if not request.progress or not is_main:  # no per-log dicts on stdout; events and the summary line remain
        trainer.remove_callback(PrinterCallback)

    resume_from = _resume_point(request, callback, is_main=is_main)
    with stop.installed():
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if stop.requested:
        raise TrainingInterrupted(trainer.state.global_step)

    final = callback.snapshot(trainer.state.global_step)
    if not final.stop_reason:
        final.stop_reason = "max steps" if settings.max_steps else "epochs done"
    result = planned.model_copy(update={
        "added_token_ids": inputs.added, "world_size": world, "train_samples": len(inputs.dataset),
        "valid_samples": len(inputs.valid_rows) if inputs.validator else 0,
        "steps": trainer.state.global_step,
        "samples_seen": final.samples_seen, "tokens_seen": int(trainer.state.num_input_tokens_seen or 0),
        "elapsed_seconds": round(final.elapsed_seconds, 3), "best_step": final.best_step,
        "best_ndcg_at_10": final.best_score, "history": final.history, "curve": final.curve,
        "letter_prior": final.best_prior, "prompts_cut": inputs.prompts_cut, "stop_reason": final.stop_reason,
        "retriever_prior_weight": inputs.prior_weight,
        "status": "complete"})
    trainer.accelerator.wait_for_everyone()
    if not is_main:
        return None
    _write_result(request, model, inputs.tokenizer, result)
    return result
