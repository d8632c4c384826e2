"""``ulmrec align build`` and ``align inspect``: alignment samples from the command line.
:mod:`ulmrec_align.cli` puts them in the ``align`` group.

Nothing heavy is imported at module level (``ulmrec --help`` stays fast).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ulmrec_align.cli_options import default_of, index_arg, options_checked, progress_bar
from ulmrec_align.prompts.answers.registry import ANSWERS, get_answer
from ulmrec_align.prompts.config import AnswerKind, PromptConfig
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.prompts.letters import MAX_LETTERS
from ulmrec_align.tasks.schema import (
    MAX_NEGATIVE_DRAWS,
    AlignConfig,
    AlignManifest,
    Negatives,
    Prefixes,
    ValidOrder,
)

if TYPE_CHECKING:
    from ulmrec_align.tasks.build import BuildResult

_PROMPT = PromptConfig()
_ANSWER_HELP = "next_item answer: " + " | ".join(f"{a.name} ({a.summary})" for a in ANSWERS.values())


def build(
    data: Annotated[Path, typer.Option("--data", help="Prepared dataset folder (`ulmrec data prepare`).")],
    out: Annotated[Path, typer.Option("--out", help="Samples folder to write (train/valid, manifest).")],
    index: Annotated[str, typer.Option(
        "--index", help="User index folder, or 'none' for the no-index (LlamaRec-style) baseline.")] = "none",
    candidates: Annotated[Path | None, typer.Option(
        "--candidates", help="Retriever candidates.jsonl (validation samples, hard negatives).")] = None,
    tasks: Annotated[str | None, typer.Option(
        "--tasks", help="Comma-separated tasks (default: all six registered built-ins).")] = None,
    task_weight: Annotated[list[str] | None, typer.Option(
        "--task-weight", help="NAME=W samples per user for a task (repeatable; default 1).")] = None,
    index_tokens: Annotated[IndexTokens, typer.Option(
        "--index-tokens", help="User codes as plain text, or as added tokens.")] = default_of(AlignConfig,
                                                                                            "index_tokens"),
    model: Annotated[str, typer.Option("--model", help="Model whose tokenizer counts tokens.")] = "smollm2",
    max_users: Annotated[int | None, typer.Option("--max-users", min=1, help="Seeded random subset.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    n_candidates: Annotated[int, typer.Option("--n-candidates", min=2, max=MAX_LETTERS)]
    = _PROMPT.n_candidates,
    history_items: Annotated[int, typer.Option("--history-items", min=0)] = _PROMPT.history_items,
    title_tokens: Annotated[int, typer.Option("--title-tokens", min=1)] = _PROMPT.title_tokens,
    strip_sizes: Annotated[bool, typer.Option(
        "--strip-sizes/--keep-sizes", help="Remove size and pack strings (', 6.7 fl oz', 'Pack of 3') from "
        "titles before they are cut (training, validation and ranking read the same titles).")]
    = _PROMPT.strip_sizes,
    max_prompt_tokens: Annotated[int, typer.Option("--max-prompt-tokens", min=64)]
    = _PROMPT.max_prompt_tokens,
    text_tokens: Annotated[int, typer.Option("--text-tokens", min=8, help="Preference/intent texts cut to N "
                                             "tokens.")] = _PROMPT.text_tokens,
    answer: Annotated[AnswerKind, typer.Option(
        "--answer", help=_ANSWER_HELP)] = _PROMPT.answer,
    prefixes: Annotated[Prefixes, typer.Option(
        "--prefixes", help="next_item training samples: all (one per prefix, as LlamaRec) | last")]
    = default_of(AlignConfig, "prefixes"),
    max_prefixes: Annotated[int | None, typer.Option(
        "--max-prefixes", min=1, help="Cap on next_item prefixes per user (the latest).")]
    = default_of(AlignConfig, "max_prefixes"),
    negatives: Annotated[Negatives | None, typer.Option(
        "--negatives", help="next_item training negatives: random (LlamaRec) | retriever (its best items "
        "for that prefix; needs --retriever). Default: retriever with --answer relevance (train on the pools "
        "the ranker sees), else random")] = None,
    negative_draws: Annotated[int, typer.Option(
        "--negative-draws", min=1, max=MAX_NEGATIVE_DRAWS, help="next_item training with random negatives: "
        "K draws of negatives and letter order per prefix; `align train` epoch e uses draw e mod K (fresh "
        "negatives each epoch, as LlamaRec). Set K to the epochs trained")]
    = default_of(AlignConfig, "negative_draws"),
    retriever: Annotated[Path | None, typer.Option(
        "--retriever", help="Retriever folder (`ulmrec retrieve train --out`), for --negatives retriever.")]
    = None,
    index_permute: Annotated[int | None, typer.Option(
        "--index-permute", help="Control: shuffle the user codes among users with this seed.")] = None,
    index_random: Annotated[int | None, typer.Option(
        "--index-random", help="Control: give every user a random distinct code drawn with this seed.")]
    = None,
    user_text: Annotated[bool, typer.Option(
        "--user-text", help="Diagnostic: next_item prompts show the user's preference text in words (a "
        "'Preferences:' line; `align rank` reads it from the tuned model). With --index none: what a perfect "
        "reading of the index could add at the same budget.")] = False,
    cold_share: Annotated[float, typer.Option(
        "--cold-share", min=0.0, help="Cold start: hold this share (< 1) of users "
        "(ulmrec_eval.cold_start, the same choice as `index build --cold-share`) out of training and "
        "validation.")] = default_of(AlignConfig, "cold_share"),
    cold_seed: Annotated[int, typer.Option("--cold-seed", help="Seed of the cold-start choice.")] = 0,
    valid_users: Annotated[int | None, typer.Option("--valid-users", min=1,
                                                    help="Cap on validation samples per task.")] = None,
    valid_order: Annotated[ValidOrder, typer.Option(
        "--valid-order", help="Lettered validation candidates: shuffled (letter prior removed) | retriever "
        "(LlamaRec's order; validation selects on the uncalibrated NDCG)")] = default_of(AlignConfig,
                                                                                       "valid_order"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing samples folder.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Build the alignment samples of the six tasks (those the data supports)."""
    _check_build_options(out, inputs={"--data": data, "--index": index, "--candidates": candidates,
                                      "--retriever": retriever}, force=force, index=index,
                         index_permute=index_permute, index_random=index_random)
    prompt = {"n_candidates": n_candidates, "history_items": history_items, "title_tokens": title_tokens,
              "strip_sizes": strip_sizes, "max_prompt_tokens": max_prompt_tokens, "text_tokens": text_tokens,
              "user_text": user_text}
    config = _config_from_options(
        tasks=tasks, task_weight=task_weight, answer=answer, negatives=negatives, prompt=prompt,
        index_tokens=index_tokens, model=model, max_users=max_users, seed=seed, prefixes=prefixes,
        max_prefixes=max_prefixes, negative_draws=negative_draws, valid_users=valid_users,
        valid_order=valid_order, index_permute=index_permute, index_random=index_random,
        cold_share=cold_share, cold_seed=cold_seed)
    _write_build(config, data=data, out=out, index=index, candidates=candidates, retriever=retriever,
                 force=force, progress=progress)


def _check_build_options(out: Path, *, inputs: dict[str, Any], force: bool, index: str,
                         index_permute: int | None, index_random: int | None) -> None:
    """What is refused before anything is read: OUT inside an input or already there (without --force), a
    code control without an index, both controls at once."""
    from ulmrec_eval.runtime.artifacts import check_out_apart, check_writable
    from ulmrec_eval.runtime.errors import InputError

    check_out_apart(out, inputs)
    check_writable(out, force=force)
    if (index_permute is not None or index_random is not None) and index_arg(index) is None:
        raise InputError("--index-permute and --index-random replace user codes: they need --index")
    if index_permute is not None and index_random is not None:
        raise InputError("--index-permute and --index-random are two different controls: give one")


def _config_from_options(*, tasks: str | None, task_weight: list[str] | None, answer: AnswerKind,
                         negatives: Negatives | None, prompt: dict[str, Any], **fields: Any) -> AlignConfig:
    """The :class:`AlignConfig` the options say: ``--tasks`` split (default: the registered built-ins),
    ``--task-weight`` parsed, the answer kind's negatives by default; a refusal is one line naming the
    option."""
    from ulmrec_align.tasks.build import parse_task_weights
    from ulmrec_align.tasks.registry import DEFAULT_TASKS

    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else list(DEFAULT_TASKS)
    with options_checked({"task_weights": "--task-weight"}):
        return AlignConfig(tasks=names, task_weights=parse_task_weights(task_weight or []),
                           negatives=negatives or get_answer(answer).negatives,
                           prompt=PromptConfig(answer=answer, **prompt), **fields)


def _write_build(config: AlignConfig, *, data: Path, out: Path, index: str, candidates: Path | None,
                 retriever: Path | None, force: bool, progress: bool) -> None:
    """Build the samples, refuse an empty training split, write the folder whole and say what it holds."""
    from ulmrec_align.tasks.build import write_samples
    from ulmrec_eval.runtime.errors import InputError

    result, start = _build_result(config, data=data, index=index, candidates=candidates, retriever=retriever,
                                  progress=progress)
    if not result.samples["train"]:
        weights = ", ".join(f"{k}={v:g}" for k, v in config.task_weights.items()) or "default weights"
        raise InputError(f"no training samples would be written (tasks {', '.join(config.tasks)}; {weights}; "
                         f"skipped: {result.manifest.skipped or 'none'}); nothing was written", path=out)
    write_samples(out, result, force=force)
    _report(result.manifest, out, seconds=time.perf_counter() - start)


def _build_result(config: AlignConfig, *, data: Path, index: str, candidates: Path | None,
                  retriever: Path | None, progress: bool) -> tuple[BuildResult, float]:
    """Read the inputs and the tokenizer (and the retriever for its negatives), then build the samples in
    memory with a progress bar; also the ``perf_counter`` at which the build began."""
    from ulmrec_align.models.loading import load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.tasks.build import build_samples, load_inputs

    index_path = index_arg(index)
    dataset, artifact, rows, inputs = load_inputs(data, index_path, candidates)
    resolved = resolve_model(config.model)
    tokenizer = load_tokenizer(resolved)
    loaded_retriever = None
    if config.negatives == "retriever" and retriever is not None:
        from ulmrec_align.retrieval.api import load_retriever

        loaded_retriever = load_retriever(retriever)[0]
    start = time.perf_counter()
    total = min(config.max_users or dataset.n_users, dataset.n_users)
    bar, update = progress_bar(total, "align build", progress and sys.stderr.isatty())
    with bar:
        result = build_samples(dataset, config, tokenizer, index=artifact, candidates=rows, inputs=inputs,
                               paths={"data": str(data), "index": str(index_path) if index_path else None,
                                      "candidates": str(candidates) if candidates else None},
                               tokenizer_name=str(resolved), retriever=loaded_retriever,
                               progress=lambda done, _: update(1))
    return result, start


def _report(manifest: AlignManifest, out: Path, *, seconds: float) -> None:
    """What was written: samples per split and task, the skipped tasks, the cold-start users."""
    for split, counts in manifest.counts.items():
        shown = ", ".join(f"{task} {n}" for task, n in counts.items()) or "none"
        typer.echo(f"{split}: {sum(counts.values())} samples ({shown})", err=True)
    for task, reason in manifest.skipped.items():
        typer.echo(f"skipped {task}: {reason}", err=True)
    if manifest.cold_users:
        typer.echo(f"held out {manifest.cold_users} cold-start users (no samples of any task)", err=True)
    typer.echo(f"wrote {out} in {seconds:.1f}s", err=True)


def inspect(
    samples: Annotated[Path, typer.Argument(help="Samples folder written by `ulmrec align build`.")],
    show: Annotated[int, typer.Option("--show", min=0, help="Examples to print per task.")] = 1,
) -> None:
    """Counts per split and task, what was skipped and why, and example samples."""
    from ulmrec_align.tasks.schema import read_manifest, read_samples
    from ulmrec_eval.runtime.errors import InputError

    manifest = read_manifest(samples)
    for split, counts in manifest.counts.items():
        present = (Path(samples) / f"{split}.jsonl").is_file()
        rows = read_samples(samples, split) if present else []  # type: ignore[arg-type]
        if len(rows) != sum(counts.values()):
            raise InputError(f"{split}.jsonl holds {len(rows)} samples but manifest.json says "
                             f"{sum(counts.values())}: the folder was changed after `align build`; "
                             "rebuild it",
                             path=samples)
    typer.echo(f"tokenizer: {manifest.tokenizer}; index tokens: {manifest.config.index_tokens}; "
               f"index: {manifest.index_path or 'none'}")
    for split, counts in manifest.counts.items():
        typer.echo(f"{split}: " + (", ".join(f"{t} {n}" for t, n in counts.items()) or "none"))
    for task, stats in manifest.prompt_tokens.items():
        typer.echo(f"prompt tokens {task}: mean {stats['mean']:.0f}, max {stats['max']:.0f}")
    for task, reason in manifest.skipped.items():
        typer.echo(f"skipped {task}: {reason}")
    if show:
        seen: dict[str, int] = {}
        for sample in read_samples(samples, "train"):
            if seen.get(sample.task, 0) < show:
                seen[sample.task] = seen.get(sample.task, 0) + 1
                typer.echo(f"\n--- {sample.task} ({sample.template_id}, user {sample.raw_user_id})\n"
                           f"{sample.prompt}{sample.response}")
