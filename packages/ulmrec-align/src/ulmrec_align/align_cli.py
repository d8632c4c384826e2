"""``ulmrec align``: build alignment samples, tune an LLM on them (LoRA/QLoRA), rank candidates, inspect.

Nothing heavy is imported at module level (``ulmrec --help`` stays fast).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from ulmrec_align.cli_options import default_of, options_checked
from ulmrec_align.models.loading import Quantization
from ulmrec_align.prompts.answers.registry import ANSWERS, get_answer
from ulmrec_align.prompts.config import AnswerKind, PromptConfig
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.prompts.letters import MAX_LETTERS
from ulmrec_align.tasks.schema import MAX_NEGATIVE_DRAWS, AlignConfig, Negatives, Prefixes, ValidOrder

app = typer.Typer(name="align", help="Alignment samples, LoRA/QLoRA tuning and LLM ranking.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

#: The choices of ``align rank`` that fill no config model (``ranking.ranker.Method`` is the library's
#: ``--method``; tests/test_cli_choices.py holds the two together).
RankSplit = Literal["test", "valid"]
RankMethod = Literal["logits", "generate"]
Calibration = Literal["prior", "none"]
_PROMPT = PromptConfig()
_ANSWER_HELP = "next_item answer: " + " | ".join(f"{a.name} ({a.summary})" for a in ANSWERS.values())


def _index_arg(value: str | None) -> Path | None:
    return None if value is None or value.lower() == "none" else Path(value)


def _progress_bar(total: int, label: str, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    from ulmrec_eval.runtime.events import emit

    bar = tqdm(total=total, desc=label, disable=not enabled, leave=False, unit="user")
    state = {"done": 0, "last": 0.0}

    def update(n: int) -> None:
        state["done"] += n
        bar.update(n)
        now = time.monotonic()
        if now - state["last"] > 2 or state["done"] == total:
            state["last"] = now
            emit(stage=label, step=state["done"], total=total)

    return bar, update


@app.command("build")
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
    history_items: Annotated[int, typer.Option("--history-items", min=1)] = _PROMPT.history_items,
    title_tokens: Annotated[int, typer.Option("--title-tokens", min=1)] = _PROMPT.title_tokens,
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
    import sys

    from ulmrec_align.models.loading import load_tokenizer
    from ulmrec_align.models.resolve import resolve_model
    from ulmrec_align.tasks.build import build_samples, load_inputs, parse_task_weights, write_samples
    from ulmrec_align.tasks.registry import DEFAULT_TASKS
    from ulmrec_eval.runtime.artifacts import check_out_apart, check_writable
    from ulmrec_eval.runtime.errors import InputError

    check_out_apart(out, {"--data": data, "--index": index, "--candidates": candidates,
                          "--retriever": retriever})
    check_writable(out, force=force)
    if (index_permute is not None or index_random is not None) and _index_arg(index) is None:
        raise InputError("--index-permute and --index-random replace user codes: they need --index")
    if index_permute is not None and index_random is not None:
        raise InputError("--index-permute and --index-random are two different controls: give one")
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else list(DEFAULT_TASKS)
    with options_checked({"task_weights": "--task-weight"}):
        config = AlignConfig(
            tasks=names, task_weights=parse_task_weights(task_weight or []),
            index_tokens=index_tokens,
            model=model, max_users=max_users, seed=seed, prefixes=prefixes,
            max_prefixes=max_prefixes, negatives=negatives or get_answer(answer).negatives,
            negative_draws=negative_draws, valid_users=valid_users,
            valid_order=valid_order,
            index_permute=index_permute, index_random=index_random, cold_share=cold_share,
            cold_seed=cold_seed,
            prompt=PromptConfig(n_candidates=n_candidates, history_items=history_items,
                                title_tokens=title_tokens, max_prompt_tokens=max_prompt_tokens,
                                text_tokens=text_tokens, answer=answer, user_text=user_text))
    index_path = _index_arg(index)
    dataset, artifact, rows, inputs = load_inputs(data, index_path, candidates)
    resolved = resolve_model(model)
    tokenizer = load_tokenizer(resolved)
    loaded_retriever = None
    if config.negatives == "retriever" and retriever is not None:
        from ulmrec_align.retrieval.api import load_retriever

        loaded_retriever = load_retriever(retriever)[0]
    start = time.perf_counter()
    total = min(config.max_users or dataset.n_users, dataset.n_users)
    bar, update = _progress_bar(total, "align build", progress and sys.stderr.isatty())
    with bar:
        result = build_samples(dataset, config, tokenizer, index=artifact, candidates=rows, inputs=inputs,
                               paths={"data": str(data), "index": str(index_path) if index_path else None,
                                      "candidates": str(candidates) if candidates else None},
                               tokenizer_name=str(resolved), retriever=loaded_retriever,
                               progress=lambda done, _: update(1))
    if not result.samples["train"]:
        weights = ", ".join(f"{k}={v:g}" for k, v in config.task_weights.items()) or "default weights"
        raise InputError(f"no training samples would be written (tasks {', '.join(names)}; {weights}; "
                         f"skipped: {result.manifest.skipped or 'none'}); nothing was written", path=out)
    write_samples(out, result, force=force)
    m = result.manifest
    for split, counts in m.counts.items():
        shown = ", ".join(f"{task} {n}" for task, n in counts.items()) or "none"
        typer.echo(f"{split}: {sum(counts.values())} samples ({shown})", err=True)
    for task, reason in m.skipped.items():
        typer.echo(f"skipped {task}: {reason}", err=True)
    if m.cold_users:
        typer.echo(f"held out {m.cold_users} cold-start users (no samples of any task)", err=True)
    typer.echo(f"wrote {out} in {time.perf_counter() - start:.1f}s", err=True)


@app.command("rank")
def rank(
    model: Annotated[str, typer.Option("--model", help="Folder of `ulmrec align train`, or a base model "
                                       "(name, folder, hub id) ranked zero-shot.")],
    data: Annotated[Path, typer.Option("--data", help="Prepared dataset folder.")],
    candidates: Annotated[Path, typer.Option("--candidates", help="Retriever candidates.jsonl.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions file (JSON lines) to write.")],
    index: Annotated[str, typer.Option("--index", help="User index folder, or 'none'.")] = "none",
    split: Annotated[RankSplit, typer.Option("--split", help="The users ranked.")] = "test",
    method: Annotated[RankMethod, typer.Option("--method", help="logits (one forward pass) | generate")]
    = "logits",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Rank only the first N users.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda")] = "cpu",
    quantization: Annotated[Quantization, typer.Option(
        "--quantization", help="auto (NF4 on CUDA, none on CPU) | nf4 | none")] = "none",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing predictions file.")] = False,
    permutations: Annotated[int, typer.Option(
        "--permutations", min=1, help="Average over K letter orders of the candidates (removes the letter "
        "bias; K times the cost; 1 = the paper's single order).")] = 1,
    calibration: Annotated[Calibration, typer.Option(
        "--calibration", help="prior: subtract the tuned model's letter prior from its letter "
        "log-probabilities (stored with the adapter; none for an untuned model) | none: raw letter logits")]
    = "prior",
    index_permute: Annotated[int | None, typer.Option(
        "--index-permute", help="Control: the user codes shuffled among users with this seed (as in "
        "`align build --index-permute`).")] = None,
    index_random: Annotated[int | None, typer.Option(
        "--index-random", help="Control: every user a random distinct code drawn with this seed (as in "
        "`align build --index-random`).")] = None,
    any_index: Annotated[bool, typer.Option(
        "--any-index", help="Rank with an index other than the one the model was tuned with.")] = False,
    answer: Annotated[AnswerKind | None, typer.Option(
        "--answer", help="How an untuned base model ranks (lettered candidates, "
        "title likelihood, or yes/no log-odds per candidate); a tuned model ranks the way it was tuned")]
    = None,
    retrieved_only: Annotated[bool, typer.Option(
        "--retrieved-only", help="Spend no LLM pass on users whose target is not among the candidates (they "
        "score 0 whatever the order): their rows keep the retriever's order; metrics are identical")] = False,
    fuse_retriever: Annotated[str | None, typer.Option(
        "--fuse-retriever", help="auto | W: add W times the retriever's standardised score to the LLM's "
        "(auto: W chosen by NDCG@10 on validation users, ranked first); default: the LLM alone")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Rank each user's retrieved candidates with the LLM; write ulmrec-eval predictions."""
    from ulmrec_eval.runtime.errors import InputError

    fusion = _fusion_arg(fuse_retriever, split)
    from ulmrec_eval.runtime.artifacts import check_out_apart, folder_lock

    check_out_apart(out, {"--model": model, "--data": data, "--candidates": candidates, "--index": index})
    with folder_lock(out):   # a second `align rank --out` of the same file is refused while this one runs
        if out.exists() and not force:
            raise InputError("exists; pass --force to replace it", path=out)
        _rank(model=model, data=data, candidates=candidates, out=out, index=index, split=split, method=method,
              limit=limit, batch_size=batch_size, device=device, quantization=quantization,
              permutations=permutations, calibration=calibration, index_permute=index_permute, answer=answer,
              retrieved_only=retrieved_only, index_random=index_random,
              any_index=any_index, progress=progress, fusion=fusion)


def _fusion_arg(value: str | None, split: str) -> float | str | None:
    """``None`` (the LLM alone), ``"auto"`` or a weight >= 0."""
    from ulmrec_eval.runtime.errors import InputError

    if value is None:
        return None
    if value.strip().lower() == "auto":
        if split == "valid":
            raise InputError("--fuse-retriever auto chooses W on the validation users; rank --split test "
                             "(or give W)")
        return "auto"
    try:
        weight = float(value)
    except ValueError:
        raise InputError(f"--fuse-retriever must be 'auto' or a number >= 0, got {value!r}") from None
    if weight < 0 or weight != weight or weight == float("inf"):
        raise InputError(f"--fuse-retriever must be 'auto' or a number >= 0, got {value!r}")
    from ulmrec_eval.runtime.limits import check_fusion_weight

    return check_fusion_weight(weight)


def _rank(*, model: str, data: Path, candidates: Path, out: Path, index: str, split: RankSplit,
          method: RankMethod, limit: int | None, batch_size: int, device: str, quantization: Quantization,
          permutations: int, calibration: Calibration, index_permute: int | None, any_index: bool,
          progress: bool, index_random: int | None = None, answer: AnswerKind | None = None,
          fusion: float | str | None = None, retrieved_only: bool = False) -> None:
    import sys

    from ulmrec_align.ranking.loading import load_ranking_model
    from ulmrec_align.ranking.run import rank_split, write_rankings
    from ulmrec_align.retrieval.candidates import read_candidates
    from ulmrec_align.tasks.build import load_inputs
    from ulmrec_eval.runtime.errors import InputError

    index_path = _index_arg(index)
    dataset, artifact, _, hashes = load_inputs(data, index_path, None)
    rows = read_candidates(candidates, split=None if fusion == "auto" else split)
    if not any_index and (Path(model) / "train_manifest.json").is_file():   # tuned: the same code control
        from ulmrec_align.tuning.config import read_train_manifest
        from ulmrec_eval.runtime.provenance import check_made_with

        made = read_train_manifest(model).samples_config
        check_made_with({f"--index-{k}": made.get(f"index_{k}") for k in ("permute", "random")},
                        {"--index-permute": index_permute, "--index-random": index_random}, artifact=model,
                        escape="--any-index")
    ranker = load_ranking_model(model, device=device, quantization=quantization,
                                prompt=PromptConfig(answer=answer) if answer else None)
    if answer is not None and ranker.tuned and ranker.prompt.answer != answer:
        raise InputError(f"the model was tuned to answer with a {ranker.prompt.answer}, not a {answer}; "
                         "drop --answer", path=model)
    if get_answer(ranker.prompt.answer).per_candidate and (method != "logits" or permutations > 1):
        raise InputError(f"a model that answers by {ranker.prompt.answer} scores each candidate on its own: "
                         "--method logits and --permutations 1 only")
    if artifact is None and ranker.index_tokens == "added":
        raise InputError("the model was tuned with a user index (added code tokens): pass --index")
    tuned_with = ranker.index_sha256
    if ranker.tuned and not any_index and tuned_with != hashes.index_sha256:
        then = "no index" if tuned_with is None else f"the index {tuned_with[:12]}…"
        now = "no index" if hashes.index_sha256 is None else f"the index {hashes.index_sha256[:12]}…"
        raise InputError(f"the model was tuned with {then} but is asked to rank with {now}; give the index "
                         "it was tuned with, or --any-index to rank anyway", path=model)
    permutations = min(permutations, ranker.prompt.n_candidates)   # only n distinct cyclic letter orders
    n_split = sum(1 for (s, _) in rows if s == split)
    n = min(limit or n_split, n_split)
    settings = {"method": method, "limit": limit, "batch_size": batch_size, "candidates_path": candidates,
                "permutations": permutations, "calibrate": calibration == "prior",
                "index_permute": index_permute, "index_random": index_random,
                "retrieved_only": retrieved_only}
    start = time.perf_counter()
    choice = None
    if fusion == "auto" and ranker.fusion is not None and not index_permute and not index_random:
        fusion, n_tuned = ranker.fusion   # chosen on validation users while tuning: no second pass
        typer.echo(f"fused with the retriever: W={fusion:g} chosen on {n_tuned} validation users while "
                   "tuning (the adapter's validation, scored as the test ranks)", err=True)
    if fusion == "auto":
        from ulmrec_align.ranking.fusion import choose_weight

        n_valid = min(limit or n_split, sum(1 for (s, _) in rows if s == "valid"))
        bar, update = _progress_bar(n_valid * permutations, "align rank (valid, for W)",
                                    progress and sys.stderr.isatty())
        with bar:
            valid = rank_split(ranker, dataset, rows, index=artifact, split="valid", progress=update,
                               **settings)  # type: ignore[arg-type]
        choice = choose_weight(valid, rows)
        fusion = choice.weight
        typer.echo(f"fused with the retriever: {choice.describe()}", err=True)
    bar, update = _progress_bar(n * permutations, "align rank", progress and sys.stderr.isatty())
    with bar:
        ranked = rank_split(ranker, dataset, rows, index=artifact, split=split, progress=update,
                            **settings)  # type: ignore[arg-type]
    if fusion is not None:
        from ulmrec_align.ranking.fusion import fuse

        ranked = [fuse(row, rows[(split, row.user_id)], float(fusion)) for row in ranked]
    write_rankings(out, ranked)
    seconds = time.perf_counter() - start
    orders = f", {permutations} letter orders" if permutations > 1 else ""
    if calibration == "prior" and ranker.letter_prior is not None and method == "logits":
        orders += ", letter prior removed"
    how = get_answer(ranker.prompt.answer).scored_by or method
    line = (f"ranked {len(ranked)} users ({how}{orders}) in {seconds:.1f}s "
            f"({len(ranked) / seconds:.2f} users/s)")
    if method == "generate":
        parsed = sum(1 for r in ranked if r.parsed) / max(len(ranked), 1)
        line += f"; complete parsed rankings: {parsed:.1%}"
    typer.echo(line, err=True)
    typer.echo(f"wrote {out}; score it with `ulmrec eval metrics {out} --split {split}`", err=True)


@app.command("inspect")
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


def _register_train() -> None:
    try:
        from ulmrec_align.tuning.cli import train_command
    except ImportError:  # tuning is optional at import time; `align train` is then absent
        return
    app.command("train")(train_command)


_register_train()
