"""The ``ulmrec-index`` command (also ``ulmrec index``): build, inspect and look up user indices.

Heavy imports (torch, sentence-transformers) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ulmrec_eval.runtime.cli import run_app
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.events import show_progress

if TYPE_CHECKING:
    from rich.console import Console

    from ulmrec_index.quantizers.base import QuantizerConfig

app = typer.Typer(
    name="index",
    help="Build and inspect semantic user indices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Fusion(str, enum.Enum):
    none = "none"
    mean = "mean"
    attention = "attention"


def default_cache_dir() -> Path:
    """``<cache root>/embeddings``: the root is ``$ULMREC_CACHE`` (the one variable for every ULMRec cache;
    ``$ULMREC_CACHE_DIR`` is its older name), else ``$XDG_CACHE_HOME/ulmrec``, else ``~/.cache/ulmrec``."""
    for name in ("ULMREC_CACHE", "ULMREC_CACHE_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser() / "embeddings"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ulmrec" / "embeddings"


def _console() -> Console:
    from rich.console import Console

    return Console()


def _setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # bitsandbytes (pulled in by transformers when installed) warns at import about optional CPU kernels
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    logging.getLogger("ulmrec_index").setLevel(
        logging.INFO if os.environ.get("ULMREC_VERBOSE") else logging.WARNING
    )


def parse_settings(settings: list[str], param_hint: str = "--set") -> dict[str, object]:
    """``["epochs=5", "name=x"]`` -> ``{"epochs": 5, "name": "x"}`` (VALUE parsed as JSON when it can be)."""
    out: dict[str, object] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=param_hint)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@app.command("build")
def build(
    users: Path = typer.Option(
        None, "--users", help='JSON lines: {"user_id": ..., "texts": [...]} per line (or --vectors).'
    ),
    vectors: Path = typer.Option(
        None, "--vectors", help="Your own user vectors instead of texts: FILE.npy or FILE.safetensors (N, D)."
    ),
    ids: Path = typer.Option(
        None, "--ids", help="With --vectors: the N user ids, in row order (.npy, .json list or one per line)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder of the index."),
    quantizer: str = typer.Option(
        "rqvae", "--quantizer", help="Quantizer kind (rqvae, rqkmeans, faiss, plugins)."
    ),
    levels: int = typer.Option(4, "--levels", min=1, help="Code levels L."),
    codebook_size: int = typer.Option(256, "--codebook-size", min=2, help="Codes per level K."),
    encoder: str = typer.Option(
        None, "--encoder", help="sentence-transformers name or folder (default: MiniLM)."
    ),
    fusion: Fusion = typer.Option(
        None, "--fusion", help="Text/ID fusion: attention (default with --users) | mean | none (default with "
                               "--vectors: the vectors as given)."
    ),
    reference: Path = typer.Option(None, "--reference", help="Reference index JSON to compare against."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Embedding cache (default: ~/.cache/ulmrec/embeddings)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    device: str = typer.Option("cpu", "--device", help="Device of the text encoder (cpu, cuda, …)."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Encode with a multi-process pool of this size (>1)."
    ),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Texts per encoder batch (1: bit-exact "
                                   "on every CPU; more: faster on a GPU, texts of one length only)."),
    joint_epochs: int = typer.Option(None, "--joint-epochs", min=0, help="Joint fusion+quantizer epochs."),
    id_weight: float = typer.Option(None, "--id-weight", min=0.0, help="Norm of the user-ID term."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress bar while encoding (default: on a terminal only)."
    ),
    settings: list[str] = typer.Option(
        [],
        "--set",
        help="Quantizer config field KEY=VALUE (VALUE parsed as JSON when it can be); repeatable.",
    ),
    cold_share: float = typer.Option(
        0.0, "--cold-share", min=0.0, max=0.99, help="Cold start: hold this share of users (chosen by "
        "ulmrec_eval.cold_start from their ids and --cold-seed) out of the fit and give them codes "
        "afterwards, as to new users (texts only)."),
    cold_seed: int = typer.Option(0, "--cold-seed", help="Seed of the cold-start choice."),
    force: bool = typer.Option(False, "--force", help="Replace an existing index at OUT."),
) -> None:
    """Build a user index from USERS.jsonl (or from --vectors and --ids) into OUT (index.json, weights,
    report.json).

    OUT appears whole or not at all (built beside it, then swapped in); a second build of the same OUT
    while one runs is refused.
    """
    _setup_logging()
    from ulmrec_eval.runtime.artifacts import check_writable, folder_lock
    from ulmrec_eval.runtime.devices import check_device
    from ulmrec_index.indexer import read_reference
    from ulmrec_index.report import render_report

    _check_sources(users=users, vectors=vectors, ids=ids, reference=reference, out=out)
    check_device(device)
    config = _indexer_config(
        _quantizer_config(quantizer, settings, levels=levels, codebook_size=codebook_size, seed=seed),
        encoder=encoder, fusion=fusion, seed=seed, device=device, workers=workers, batch_size=batch_size,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()), progress=progress,
        joint_epochs=joint_epochs, id_weight=id_weight)
    with folder_lock(out):  # held from the check to the swap: a second build of OUT stops here
        check_writable(out, force=force)
        ref = read_reference(reference) if reference is not None else None
        indexer, n_users = _fit(config, users=users, vectors=vectors, ids=ids, fusion=fusion, reference=ref,
                                cold=(cold_share, cold_seed))
        folder = indexer.save(out, force=force)
    assert indexer.report is not None
    _console().print(render_report(indexer.report))
    cold = len(indexer.artifact.cold_users) if indexer.artifact is not None else 0
    held = f"; {cold} cold-start users encoded after the fit" if cold else ""
    typer.echo(f"wrote {folder} ({n_users} users{held}, {indexer.report.timings['total']:.1f}s)")


def _check_sources(*, users: Path | None, vectors: Path | None, ids: Path | None, reference: Path | None,
                   out: Path) -> None:
    """One input form (texts, or vectors with their ids), none of them inside OUT."""
    if (users is None) == (vectors is None):
        raise InputError("give --users USERS.jsonl or --vectors FILE.npy|.safetensors --ids FILE")
    if (vectors is None) != (ids is None):
        raise InputError("--vectors and --ids go together (the ids name the vector rows, in order)")
    for source in (users, vectors, ids, reference):
        if source is not None and out.resolve() in source.resolve().parents:
            raise InputError(f"--out {out} holds the input {source}; choose another --out")


def _indexer_config(quantizer_config: QuantizerConfig, *, encoder: str | None, fusion: Fusion | None,
                    seed: int, device: str, workers: int, batch_size: int, cache_dir: Path | None,
                    progress: bool | None, joint_epochs: int | None, id_weight: float | None) -> Any:
    """The :class:`IndexerConfig` of the command's options (unset tuning options keep their defaults)."""
    from ulmrec_index.indexer import IndexerConfig

    overrides: dict[str, object] = {}
    if joint_epochs is not None:
        overrides["joint_epochs"] = joint_epochs
    if id_weight is not None:
        overrides["id_weight"] = id_weight
    return IndexerConfig(quantizer=quantizer_config, encoder=encoder,
                         fusion=(fusion or Fusion.attention).value, seed=seed, device=device,
                         workers=workers, encode_batch_size=batch_size, cache_dir=cache_dir,
                         show_progress=show_progress(progress), **overrides)


def _fit(config: Any, *, users: Path | None, vectors: Path | None, ids: Path | None, fusion: Fusion | None,
         reference: Any, cold: tuple[float, int] = (0.0, 0)) -> tuple[Any, int]:
    """The fitted :class:`UserIndexer` (from texts, or from vectors and ids) and its number of users; with a
    cold-start share, the cold users' codes come from :meth:`UserIndexer.extend` after a fit without them."""
    from ulmrec_index.indexer import UserIndexer

    share, seed = cold
    if share > 0 and vectors is not None:
        raise InputError("--cold-share works with --users (texts); with --vectors, encode new users with "
                         "UserIndexer.encode_vectors")
    if vectors is not None and ids is not None:
        from ulmrec_index.vectors import read_ids, read_vectors

        matrix, user_ids = read_vectors(vectors), read_ids(ids)
        if matrix.shape[0] != len(user_ids):
            raise InputError(f"--vectors {vectors} has {matrix.shape[0]} rows but --ids {ids} has "
                             f"{len(user_ids)} ids")
        fitted = UserIndexer(config).fit_vectors(user_ids, matrix, fusion=(fusion or Fusion.none).value,
                                                 reference=reference)
        return fitted, len(user_ids)
    from ulmrec_index.users import read_user_texts

    assert users is not None
    records = read_user_texts(users)
    if share <= 0:
        return UserIndexer(config).fit(records, reference=reference), len(records)
    from ulmrec_eval.cold_start import is_cold

    flags = [is_cold(r.user_id, share, seed=seed) for r in records]
    cold_users = [r for r, cold in zip(records, flags, strict=True) if cold]
    warm = [r for r, cold in zip(records, flags, strict=True) if not cold]
    if len(warm) < 2 or not cold_users:
        raise InputError(f"--cold-share {share} holds out {len(cold_users)} of {len(records)} users: "
                         "choose a share that leaves users on both sides")
    indexer = UserIndexer(config).fit(warm, reference=reference)
    indexer.extend(cold_users, share=share, seed=seed)
    return indexer, len(records)


def _quantizer_config(kind: str, settings: list[str], **fixed: object) -> QuantizerConfig:
    """The quantizer config from --quantizer and --set; a bad field is one line naming the option."""
    from pydantic import ValidationError

    from ulmrec_eval.runtime.io import validation_message
    from ulmrec_index.quantizers.registry import get_quantizer_config_class, parse_quantizer_config

    try:
        return parse_quantizer_config({"kind": kind, **parse_settings(settings)}, **fixed)
    except ValidationError as exc:
        config_class = get_quantizer_config_class(kind)
        raise InputError(f"--quantizer {kind} / --set: {validation_message(config_class, exc)}") from None


@app.command("inspect")
def inspect(
    folder: Path = typer.Argument(..., help="Index folder written by `build`."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json instead of the table."),
) -> None:
    """Show an index's report (codes used, perplexity, collisions, coherence, reference figures)."""
    from ulmrec_index.artifact import REPORT_FILE, load_index, load_report
    from ulmrec_index.report import render_report

    artifact = load_index(folder)
    report = load_report(folder)
    if report is None:
        raise FileNotFoundError(f"{Path(folder) / REPORT_FILE} is missing")
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    console = _console()
    console.print(render_report(report))
    typer.echo(
        f"{len(artifact.codes)} users, {artifact.levels} levels {artifact.codebook_sizes}, quantizer "
        f"{artifact.quantizer_kind}, fusion {artifact.fusion.effective}, encoder {artifact.encoder.name}, "
        f"extra level: {'yes' if artifact.extra_level.used else 'no'}"
    )


@app.command("probe")
def probe(
    folder: Path = typer.Argument(..., help="Index folder written by `build`."),
    labels: Path = typer.Option(..., "--labels", help="JSON lines {\"user_id\": ..., \"label\": ...}, e.g. "
                                "the traits_<Category>.jsonl that `ulmrec data synthetic` writes."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """How well the codes predict a known user label: leave-one-out majority label per code prefix."""
    from ulmrec_index.artifact import load_index
    from ulmrec_index.probe import probe_codes, read_labels

    report = probe_codes(load_index(folder).codes, read_labels(labels))
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    typer.echo(f"{report.users} users with a code and a label; labels: "
               + ", ".join(f"{k} {v}" for k, v in report.labels.items()))
    typer.echo(f"always the most common label: {report.majority:.3f}")
    for p in report.prefixes:
        typer.echo(f"first {p.prefix} code(s): accuracy {p.accuracy:.3f} ({p.groups} prefixes, {p.alone} "
                   "users alone in theirs)")


@app.command("lookup")
def lookup(
    folder: Path = typer.Argument(..., help="Index folder written by `build`."),
    user_id: str = typer.Argument(..., help="The user to look up."),
    limit: int = typer.Option(10, "--limit", min=0, help="Users sharing the prefix to list."),
) -> None:
    """Print a user's code, their texts and the users sharing the longest shared prefix of their code."""
    from ulmrec_eval.runtime.io import iter_jsonl
    from ulmrec_index.artifact import TEXTS_FILE, load_index

    artifact = load_index(folder)
    code = artifact.code(user_id)
    typer.echo(f"{user_id}\t{artifact.token(user_id)}\t{code}")
    texts_path = Path(folder) / TEXTS_FILE
    if texts_path.is_file():
        for _, row in iter_jsonl(texts_path):
            if row.get("user_id") == user_id:
                texts = row.get("texts") or []
                typer.echo(f"texts ({len(texts)}):" if texts else "texts: none (indexed by the user-ID path)")
                for text in texts:
                    typer.echo(f"  - {text}")
                break
    shared = {depth: artifact.sharing_prefix(code[:depth]) for depth in range(1, len(code))}
    for depth, users_at in shared.items():
        typer.echo(f"sharing first {depth} code(s): {len(users_at) - 1} other user(s)")
    deepest = max((depth for depth, users_at in shared.items() if len(users_at) > 1), default=None)
    if deepest is not None and limit:
        others = [u for u in shared[deepest] if u != user_id][:limit]
        typer.echo(f"users sharing {deepest} code(s):")
        for other in others:
            typer.echo(f"  {other}\t{artifact.token(other)}")


def main() -> None:
    """Console-script entry point."""
    run_app(app, prog_name="ulmrec-index")
