"""``ulmrec align train``: the Typer command (put in the ``align`` group by :mod:`ulmrec_align.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from ulmrec_align.cli_options import options_checked
from ulmrec_align.losses.registry import LOSSES
from ulmrec_align.models.loading import Quantization
from ulmrec_align.models.train_manifest import (
    LoraSettings,
    LossKind,
    ScheduleKind,
    TrainManifest,
    TrainSettings,
)
from ulmrec_eval.runtime.errors import CommandInterruptedError, InputError

if TYPE_CHECKING:
    from ulmrec_align.tuning.request import TrainRequest

#: ``--gradient-checkpointing``: the CLI's words for ``TrainSettings.gradient_checkpointing`` (None, True,
#: False).
Checkpointing = Literal["auto", "on", "off"]
_TRAIN = TrainSettings()
_LORA = LoraSettings()
_LOSS_HELP = " | ".join(f"{loss.name}: {loss.summary}" for loss in LOSSES.values())


def train_command(
    samples: Annotated[Path, typer.Option("--samples", help="Samples folder (`ulmrec align build`).")],
    model: Annotated[str, typer.Option("--model", help="smollm2, a local model folder or a hub id.")],
    out: Annotated[Path, typer.Option("--out", help="Output: adapter/, tokenizer/, train_manifest.json.")],
    epochs: Annotated[float, typer.Option("--epochs", help="Passes over the samples, > 0.")] = _TRAIN.epochs,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1,
                                                  help="Optimizer steps (overrides --epochs).")] = None,
    save_steps: Annotated[int, typer.Option("--save-steps", min=1, help="Checkpoint every N steps.")]
    = _TRAIN.save_steps,
    eval_steps: Annotated[int | None, typer.Option("--eval-steps", min=1,
                                                   help="Validate every N steps (default: save steps).")]
    = None,
    valid_users: Annotated[int, typer.Option("--valid-users", min=1,
                                             help="Validation ranking samples per validation.")] = 200,
    code_valid_users: Annotated[int, typer.Option(
        "--code-valid-users", min=0, help="Validation users whose code-task samples are scored at each "
        "validation (reported, never used to choose); 0 = none.")] = _TRAIN.code_valid_users,
    patience: Annotated[int | None, typer.Option("--patience", min=1,
                                                 help="Validations without gain before stopping.")]
    = _TRAIN.patience,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate, > 0 (paper: 1e-4).")] = _TRAIN.lr,
    warmup_steps: Annotated[int | None, typer.Option(
        "--warmup-steps", min=0, help="Linear warm-up steps (default: the first 5 % of the run that happens; "
        "the release: 100).")] = None,
    scheduler: Annotated[ScheduleKind, typer.Option(
        "--scheduler", help="Decay over the run that happens (steps or --max-minutes): cosine | linear "
        "(the release) | constant")] = _TRAIN.scheduler,
    loss: Annotated[LossKind, typer.Option(
        "--loss", help=_LOSS_HELP)] = _TRAIN.loss,
    group_by_length: Annotated[bool, typer.Option(
        "--group-by-length/--no-group-by-length", help="Batches of similar length (less padding).")]
    = _TRAIN.group_by_length,
    gradient_checkpointing: Annotated[Checkpointing, typer.Option(
        "--gradient-checkpointing", help="auto (on for CUDA, off on CPU) | on | off")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples per process per pass.")]
    = _TRAIN.batch_size,
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1, help="Passes per optimizer step.")]
    = _TRAIN.grad_accum,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Max tokens per sample.")]
    = _TRAIN.max_length,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = _LORA.r,
    lora_alpha: Annotated[float, typer.Option(
        "--lora-alpha", help="LoRA scale (the update is scaled by alpha / r), > 0.")] = _LORA.alpha,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout", min=0.0, help="< 1.")] = _LORA.dropout,
    lora_targets: Annotated[str, typer.Option("--lora-targets", help="Comma-separated module names, or "
                                              "all-linear (every linear layer but the output head).")]
    = ",".join(_LORA.targets),
    lora_top_layers: Annotated[int | None, typer.Option(
        "--lora-top-layers", min=1, help="Adapters on the top K decoder layers only (default: every "
        "layer); the backward pass stops below them.")] = _LORA.top_layers,
    quantization: Annotated[Quantization, typer.Option("--quantization",
                                                       help="auto (NF4 on CUDA, none on CPU) | nf4 | none")]
    = _TRAIN.quantization,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda")] = _TRAIN.device,
    num_processes: Annotated[int, typer.Option("--num-processes", min=1,
                                               help="Data-parallel processes (gloo on CPU, NCCL on GPU).")]
    = _TRAIN.num_processes,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes",
                                                      help="Training time budget (> 0); the best adapter is "
                                                      "kept.")] = None,
    retriever_prior: Annotated[str, typer.Option(
        "--retriever-prior", help="--loss relevance: train softmax(LLM + β·z(retriever)) over each pool, "
        "the LLM learning a correction to the retriever. β >= 0, or auto (fitted on the validation pools); "
        "0: the LLM alone.")] = "0",
    seed: Annotated[int, typer.Option("--seed")] = _TRAIN.seed,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in OUT.partial.")]
    = False,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT / discard OUT.partial.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Tune a causal LM with LoRA (QLoRA on CUDA) on alignment samples; keep the best validation adapter."""
    import sys

    from ulmrec_align.tuning.request import TrainRequest

    _check_out(out, samples=samples, model=model)
    lora = _lora_from_options(r=lora_r, alpha=lora_alpha, dropout=lora_dropout, targets=lora_targets,
                              top_layers=lora_top_layers)
    train = _train_from_options(
        epochs=epochs, max_steps=max_steps, save_steps=save_steps, eval_steps=eval_steps,
        valid_users=valid_users, code_valid_users=code_valid_users, patience=patience, lr=lr,
        batch_size=batch_size, grad_accum=grad_accum,
        max_length=max_length, quantization=quantization, device=device, num_processes=num_processes,
        max_minutes=max_minutes, seed=seed, warmup_steps=warmup_steps, scheduler=scheduler, loss=loss,
        group_by_length=group_by_length, gradient_checkpointing=gradient_checkpointing,
        retriever_prior=_prior_arg(retriever_prior))
    request = TrainRequest(samples=samples, model=model, out=out, resume=resume, force=force,
                           progress=progress and sys.stderr.isatty(), lora=lora, train=train)
    _report(_run(request), out)


def _check_out(out: Path, *, samples: Path, model: str) -> None:
    """OUT and OUT.partial (its checkpoints) must lie apart from the inputs."""
    from ulmrec_align.tuning.request import partial_dir
    from ulmrec_eval.runtime.artifacts import check_out_apart

    check_out_apart(out, {"--samples": samples, "--model": model})
    check_out_apart(partial_dir(out), {"--samples": samples, "--model": model})


def _lora_from_options(*, r: int, alpha: float, dropout: float, targets: str,
                       top_layers: int | None = None) -> LoraSettings:
    """``--lora-*`` -> :class:`LoraSettings` (``--lora-targets`` split on commas); a refusal names the
    option."""
    names = [t.strip() for t in targets.split(",") if t.strip()]
    with options_checked(prefix="--lora-"):
        return LoraSettings(r=r, alpha=alpha, dropout=dropout, targets=names, top_layers=top_layers)


def _train_from_options(*, gradient_checkpointing: Checkpointing, **options: Any) -> TrainSettings:
    """The other options -> :class:`TrainSettings` (``--gradient-checkpointing auto|on|off`` is the field's
    None | True | False); a refusal names the option."""
    checkpointing = None if gradient_checkpointing == "auto" else gradient_checkpointing == "on"
    with options_checked():
        return TrainSettings(gradient_checkpointing=checkpointing, **options)


def _prior_arg(value: str) -> float | Literal["auto"]:
    """``--retriever-prior``: ``"auto"`` or a number (its range is :class:`TrainSettings`'s to check)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise InputError(f"--retriever-prior must be 'auto' or a number >= 0, got {value!r}") from None


def _run(request: TrainRequest) -> TrainManifest:
    """Train; an interrupt becomes one message saying what was kept and how to go on."""
    from ulmrec_align.tuning.run import run_training

    try:
        return run_training(request)
    except KeyboardInterrupt as stopped:
        raise _interrupted(stopped, request.out) from None


def _interrupted(stopped: KeyboardInterrupt, out: Path) -> CommandInterruptedError:
    """Where an interrupted run stands: the checkpoint kept (at the step or earlier), or none."""
    from ulmrec_align.tuning.callbacks import TrainingInterrupted
    from ulmrec_align.tuning.checkpoints import checkpoints
    from ulmrec_align.tuning.request import partial_dir

    saved = checkpoints(partial_dir(out))
    if isinstance(stopped, TrainingInterrupted) and saved and saved[-1][0] == stopped.step:
        return CommandInterruptedError(
            f"Interrupted at step {stopped.step}: saved checkpoint-{stopped.step} in {partial_dir(out)}; "
            "continue with the same command and --resume.")
    if saved:
        return CommandInterruptedError(
            f"Interrupted: the last checkpoint (step {saved[-1][0]}) is in {partial_dir(out)}; later "
            "steps are trained again; continue with the same command and --resume.")
    if partial_dir(out).exists():
        return CommandInterruptedError(
            "Interrupted before the first checkpoint: no step was kept; --resume starts from step 0.")
    return CommandInterruptedError("Interrupted before the first checkpoint was saved: nothing was kept; "
                                   "the next run starts from step 0.")


def _report(manifest: TrainManifest, out: Path) -> None:
    """The run in one line (steps, why it stopped, samples, tokens, the best validation), cut prompts."""
    best = ("no validation samples (kept the last adapter)" if manifest.best_ndcg_at_10 is None else
            f"best validation NDCG@10 {manifest.best_ndcg_at_10:.4f} at step {manifest.best_step}")
    rate = manifest.tokens_seen / manifest.elapsed_seconds if manifest.elapsed_seconds else 0.0
    typer.echo(f"trained {manifest.steps} steps ({manifest.stop_reason}) on {manifest.samples_seen} samples, "
               f"{manifest.tokens_seen} tokens in {manifest.elapsed_seconds:.0f}s ({rate:.0f} tokens/s); "
               f"{best}", err=True)
    if manifest.retriever_prior_weight is not None:
        fitted = " (fitted on the validation pools)" if manifest.train.retriever_prior == "auto" else ""
        typer.echo(f"trained on softmax(LLM + β·z(retriever)) with β = {manifest.retriever_prior_weight:.4g}"
                   f"{fitted}", err=True)
    if manifest.prompts_cut:
        typer.echo(f"note: {manifest.prompts_cut} of {manifest.train_samples} training prompts were longer "
                   f"than --max-length {manifest.train.max_length} and were cut from the left", err=True)
    typer.echo(f"wrote {out}/adapter, tokenizer, train_manifest.json", err=True)
