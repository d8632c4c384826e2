"""``ulmrec retrieve``: train the LRURec retriever and evaluate a saved one (lazy heavy imports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ulmrec_eval.runtime.errors import CommandInterruptedError
from ulmrec_eval.runtime.events import show_progress

app = typer.Typer(name="retrieve", help="Train the LRURec retriever; write candidates and metrics.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

DataOpt = Annotated[Path, typer.Option("--data", help="Prepared dataset folder (`ulmrec data prepare`).")]
ProgressOpt = Annotated[bool | None, typer.Option("--progress/--no-progress",
                                               help="Progress bars (default: on a terminal only).")]


def _print_metrics(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    splits = [s for s in ("valid", "test") if s in metrics]
    if not splits:
        return
    keys = list(metrics[splits[0]]["metrics"])
    table = Table(title=f"{metrics['model']} full ranking (history masked: {metrics['mask_history']})")
    table.add_column("metric")
    for split in splits:
        table.add_column(f"{split} ({metrics[split]['users']} users)", justify="right")
    for key in keys:
        table.add_row(key, *(f"{metrics[s]['metrics'][key]:.4f}" for s in splits))
    if "target_in_candidates" in metrics[splits[0]]:
        table.add_row(f"target in top-{metrics['pool_size']}",
                      *(f"{metrics[s].get('target_in_candidates', float('nan')):.4f}" for s in splits))
    Console(stderr=False).print(table)


def _check_device(device: str) -> None:
    """The device rule of :func:`ulmrec_eval.runtime.devices.check_device`, before anything is read."""
    from ulmrec_eval.runtime.devices import check_device

    check_device(device)


def _load_config(path: Path | None) -> Any:
    from ulmrec_align.retrieval.config import RetrieverConfig

    if path is None:
        return RetrieverConfig()
    from ulmrec_align.retrieval.errors import RetrieverError
    from ulmrec_eval.runtime.io import read_json_model

    try:
        return read_json_model(path, RetrieverConfig)
    except FileNotFoundError:
        raise RetrieverError("config file not found", path=path) from None


def _train_settings(config: Path | None, *, epochs: int | None = None, seed: int | None = None,
                    batch_size: int | None = None, lr: float | None = None, patience: int | None = None,
                    max_minutes: float | None = None, threads: int | None = None,
                    pool_size: int | None = None, model: str | None = None) -> Any:
    """The :class:`RetrieverConfig` ``retrieve train`` runs with: the ``--config`` file (or the defaults),
    then the flags that were given."""
    settings = _load_config(config)
    train_updates = {k: v for k, v in {"epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
                                       "patience": patience, "max_minutes": max_minutes,
                                       "num_threads": threads}.items() if v is not None}
    settings = settings.model_copy(update={"train": settings.train.model_copy(update=train_updates)})
    if pool_size is not None:
        settings = settings.model_copy(update={"candidates": settings.candidates.model_copy(
            update={"pool_size": pool_size})})
    if model is not None and model != settings.model.kind:
        settings = settings.model_copy(update={"model": {"kind": model}})
    return type(settings).model_validate(settings.model_dump())    # re-validate the overrides


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value
    return out


def resolved_train_settings(options: dict[str, Any]) -> dict[str, Any]:
    """Every setting ``retrieve train`` resolves from ``options`` (its defaults included), flattened as
    ``model.dropout`` …: what the pipeline records so that a changed library default reruns the stage."""
    known = ("epochs", "seed", "batch_size", "lr", "patience", "max_minutes", "threads", "pool_size", "model")
    config = options.get("config")
    settings = _train_settings(Path(config) if config else None,
                               **{k: options[k] for k in known if options.get(k) is not None})
    return _flatten("", settings.model_dump(mode="json"), {})


@app.command("train")
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Run folder: model, checkpoint, candidates, metrics.")],
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs (default 500).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda[:N] or mps (where torch can use it).")] = "cpu",
    seed: Annotated[int | None, typer.Option(help="Random seed (default 42).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint in --out.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start anew in a non-empty --out.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Training windows per step (default 64).")] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate (default 1e-3).")] = None,
    patience: Annotated[int | None, typer.Option(help="Validations without gain before stop.")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Training time budget in minutes.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: torch's choice).")] = None,
    pool_size: Annotated[int | None, typer.Option(min=1, help="Candidates per user (default 20).")] = None,
    config: Annotated[Path | None,
                      typer.Option("--config", help="RetrieverConfig JSON; flags override it.")] = None,
    model: Annotated[str | None, typer.Option(help="lrurec (default) or sasrec.")] = None,
    progress: ProgressOpt = None,
) -> None:
    """Train LRURec (or SASRec) on the train split, select it on validation, write candidates and metrics."""
    from pydantic import ValidationError

    from ulmrec_align.data.prepared import PreparedDataset
    from ulmrec_align.retrieval.api import train_retriever
    from ulmrec_align.retrieval.config import RetrieverConfig
    from ulmrec_align.retrieval.errors import RetrieverError
    from ulmrec_eval.runtime.artifacts import check_out_apart
    from ulmrec_eval.runtime.io import validation_message

    check_out_apart(out, {"--data": data, "--config": config})
    _check_device(device)
    try:
        settings = _train_settings(config, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
                                   patience=patience, max_minutes=max_minutes, threads=threads,
                                   pool_size=pool_size, model=model)
    except ValidationError as exc:
        raise RetrieverError(validation_message(RetrieverConfig, exc)) from None
    dataset = PreparedDataset.load(data)
    try:
        run = train_retriever(dataset, out, settings, device=device, resume=resume, force=force,
                              show_progress=show_progress(progress))
    except KeyboardInterrupt:
        raise CommandInterruptedError(f"Interrupted: checkpoint saved in {out}; continue with `ulmrec "
                                      f"retrieve train --data {data} --out {out} --resume`.") from None
    p = run.progress
    typer.echo(f"stopped after {p.epoch} epochs ({p.stop_reason}); best validation "
               f"{settings.train.best_metric} {p.best_score:.4f} at epoch {p.best_epoch}; "
               f"{p.elapsed_seconds:.0f}s", err=True)
    _print_metrics(run.metrics)
    typer.echo(f"wrote {out}/model.safetensors, config.json, candidates.jsonl, metrics.json", err=True)


train.resolved_settings = resolved_train_settings  # type: ignore[attr-defined]


@app.command("tune")
def tune(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder of the selected model (trials: OUT.trials).")],
    max_minutes: Annotated[float, typer.Option(min=0.01, help="Time budget of the whole search.")] = 60.0,
    max_trials: Annotated[int | None, typer.Option(min=1, help="At most this many trials.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the trial order.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda[:N] or mps (where torch can use it).")] = "cpu",
    config: Annotated[Path | None,
                      typer.Option("--config", help="Base RetrieverConfig JSON (trial 0).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing OUT (and OUT.trials).")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the search in OUT.trials (the same plan).")] = False,
    progress: ProgressOpt = None,
) -> None:
    """Search dropout, learning rate, weight decay and hidden size on validation NDCG@10 within a budget."""
    from ulmrec_align.data.prepared import PreparedDataset
    from ulmrec_align.retrieval.tune import tune_retriever
    from ulmrec_eval.runtime.artifacts import check_out_apart

    for written in (out, Path(f"{out}.trials")):   # the selected model and the trials beside it
        check_out_apart(written, {"--data": data, "--config": config})
    _check_device(device)
    dataset = PreparedDataset.load(data)
    try:
        report = tune_retriever(dataset, out, _load_config(config), max_minutes=max_minutes,
                                max_trials=max_trials, seed=seed, device=device, force=force, resume=resume,
                                show_progress=show_progress(progress),
                                log=lambda line: typer.echo(line, err=True))
    except KeyboardInterrupt:
        raise CommandInterruptedError(f"Interrupted: the finished trials and the last checkpoint are kept in "
                                      f"{out}.trials; continue with the same command and --resume.") from None
    for trial in report.trials:
        score = "-" if trial.valid_score is None else f"{trial.valid_score:.4f}"
        mark = "*" if trial.index == report.best else " "
        typer.echo(f"{mark} trial {trial.index:3d}  valid {report.metric} {score}  {trial.settings}  "
                   f"{trial.epochs_run} epochs, {trial.seconds:.0f}s", err=True)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    _print_metrics(metrics)
    typer.echo(f"wrote {out} (trial {report.best} selected on validation {report.metric}; tune.json)",
               err=True)


@app.command("eval")
def evaluate(
    data: DataOpt,
    model: Annotated[Path, typer.Option("--model", help="Run folder written by `ulmrec retrieve train`.")],
    out: Annotated[Path | None, typer.Option("--out", help="metrics.json folder (default: --model).")] = None,
    candidates: Annotated[bool, typer.Option("--candidates/--no-candidates",
                                             help="Also rewrite candidates.jsonl.")] = False,
    pool_size: Annotated[int | None, typer.Option(min=1,
                                                  help="Candidates per user (default: the model's).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda[:N] or mps (where torch can use it).")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json instead of a table.")] = False,
) -> None:
    """Recompute the full-ranking metrics (and optionally candidates) of a saved retriever."""
    from ulmrec_align.data.prepared import PreparedDataset
    from ulmrec_align.retrieval.api import evaluate_retriever

    _check_device(device)
    dataset = PreparedDataset.load(data)
    metrics = evaluate_retriever(dataset, model, out_dir=out, device=device, candidates=candidates,
                                 pool_size=pool_size)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in metrics.items() if k != "training"}, indent=2))
    else:
        _print_metrics(metrics)


@app.command("user-vectors")
def user_vectors_command(
    data: DataOpt,
    retriever: Annotated[Path, typer.Option("--retriever",
                                            help="Run folder written by `ulmrec retrieve train`.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for vectors.safetensors and ids.json.")],
    kind: Annotated[str, typer.Option(
        "--kind", help="state: the retriever's hidden state after the user's training prefix | item-mean: "
        "the mean of its item embeddings over that prefix")] = "state",
    device: Annotated[str, typer.Option(help="cpu, cuda[:N] or mps (where torch can use it).")] = "cpu",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing folder.")] = False,
) -> None:
    """Collaborative user vectors for `ulmrec index build --vectors OUT/vectors.safetensors --ids
    OUT/ids.json` (an index built from behaviour instead of review text); validation and test targets are
    never read."""
    from ulmrec_align.data.prepared import PreparedDataset
    from ulmrec_align.retrieval.user_vectors import (
        IDS_FILE,
        KINDS,
        VECTORS_FILE,
        user_vectors,
        write_user_vectors,
    )
    from ulmrec_eval.runtime.artifacts import check_out_apart, check_writable
    from ulmrec_eval.runtime.errors import InputError

    if kind not in KINDS:
        raise InputError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    check_out_apart(out, {"--data": data, "--retriever": retriever})
    check_writable(out, force=force)
    _check_device(device)
    dataset = PreparedDataset.load(data)
    vectors = user_vectors(dataset, retriever, kind=kind, device=device)  # type: ignore[arg-type]
    write_user_vectors(out, dataset, vectors, force=force)
    typer.echo(f"wrote {vectors.shape[0]} user vectors of dimension {vectors.shape[1]} ({kind}) to "
               f"{out / VECTORS_FILE} and {out / IDS_FILE}", err=True)
