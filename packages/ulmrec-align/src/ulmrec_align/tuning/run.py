"""``ulmrec align train`` as a function: LoRA/QLoRA tuning of a causal LM on alignment samples.

Flow (each step a function, so that a multi-process launch can split them):

1. :func:`prepare_run` (one process): check the inputs, create ``T.partial/`` (checkpoints, best adapters,
   ``run.json`` = the planned :class:`TrainManifest`) or, with ``--resume``, check that ``run.json`` matches.
2. :func:`ulmrec_align.tuning.train.train_in_process` (every process; several through
   :mod:`ulmrec_align.tuning.launch`): the training loop; writes ``T.partial/result.json`` at the end.
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

from ulmrec_align.models.train_manifest import TOKENIZER_DIR
from ulmrec_align.tuning.config import (
    ADAPTER_DIR,
    BEST_PREFIX,
    TRAIN_MANIFEST,
    BaseModelInfo,
    TrainManifest,
    TrainSettings,
)
from ulmrec_align.tuning.request import (
    FINAL_ADAPTER,
    RESULT_FILE,
    RUN_FILE,
    WORKER_ENV,
    TrainRequest,
    partial_dir,
)
from ulmrec_eval.runtime.artifacts import atomic_dir, check_writable, folder_lock, sha256_file
from ulmrec_eval.runtime.devices import check_device
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_text, read_json_model

#: Settings that may differ between a run and its --resume (they do not change what a step computes).
_RESUMABLE_CHANGES = {"max_minutes", "max_steps", "epochs", "patience", "keep_checkpoints", "eval_batch_size"}


def _versions() -> dict[str, str]:
    try:
        from ulmrec_eval.runtime.environment import package_versions
    except ImportError:
        return {}
    return package_versions(("ulmrec-align", "torch", "transformers", "peft", "accelerate", "bitsandbytes"))


def plan(request: TrainRequest) -> TrainManifest:
    """The manifest this request would produce, before training (inputs resolved and hashed)."""
    from ulmrec_align.models.errors import ModelError
    from ulmrec_align.models.loading import resolve_quantization
    from ulmrec_align.models.resolve import model_identity, resolve_model
    from ulmrec_align.tasks.schema import MANIFEST, read_manifest

    samples = read_manifest(request.samples)
    check_device(request.train.device, error=ModelError)
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
                    from ulmrec_align.tuning.train import train_in_process

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
