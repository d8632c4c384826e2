"""``ulmrec align rank``: rank each user's retrieved candidates with an LLM (tuned or zero-shot) and write
ulmrec-eval predictions. :mod:`ulmrec_align.cli` puts it in the ``align`` group.

Nothing heavy is imported at module level (``ulmrec --help`` stays fast).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ulmrec_align.cli_options import index_arg, progress_bar
from ulmrec_align.models.loading import Quantization
from ulmrec_align.prompts.answers.registry import get_answer
from ulmrec_align.prompts.config import AnswerKind, PromptConfig

#: The choices of ``align rank`` that fill no config model (``ranking.ranker.Method`` is the library's
#: ``--method``; tests/test_cli_choices.py holds the two together).
RankSplit = Literal["test", "valid"]
RankMethod = Literal["logits", "generate"]
Calibration = Literal["prior", "none"]


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

    dataset, artifact, _, hashes = load_inputs(data, index_arg(index), None)
    rows = read_candidates(candidates, split=None if fusion == "auto" else split)
    if not any_index and (Path(model) / "train_manifest.json").is_file():   # tuned: the same code control
        _check_code_control(model, index_permute=index_permute, index_random=index_random)
    ranker = load_ranking_model(model, device=device, quantization=quantization,
                                prompt=PromptConfig(answer=answer) if answer else None)
    _check_ranker(ranker, model=model, answer=answer, method=method, permutations=permutations,
                  has_index=artifact is not None, index_sha256=hashes.index_sha256, any_index=any_index)
    permutations = min(permutations, ranker.prompt.n_candidates)   # only n distinct cyclic letter orders
    n_split = sum(1 for (s, _) in rows if s == split)
    n = min(limit or n_split, n_split)
    settings = {"method": method, "limit": limit, "batch_size": batch_size, "candidates_path": candidates,
                "permutations": permutations, "calibrate": calibration == "prior",
                "index_permute": index_permute, "index_random": index_random,
                "retrieved_only": retrieved_only}
    start = time.perf_counter()
    if fusion == "auto" and ranker.fusion is not None and not index_permute and not index_random:
        fusion, n_tuned = ranker.fusion   # chosen on validation users while tuning: no second pass
        typer.echo(f"fused with the retriever: W={fusion:g} chosen on {n_tuned} validation users while "
                   "tuning (the adapter's validation, scored as the test ranks)", err=True)
    if fusion == "auto":
        from ulmrec_align.ranking.fusion import choose_weight

        n_valid = min(limit or n_split, sum(1 for (s, _) in rows if s == "valid"))
        bar, update = progress_bar(n_valid * permutations, "align rank (valid, for W)",
                                    progress and sys.stderr.isatty())
        with bar:
            valid = rank_split(ranker, dataset, rows, index=artifact, split="valid", progress=update,
                               **settings)  # type: ignore[arg-type]
        choice = choose_weight(valid, rows)
        fusion = choice.weight
        typer.echo(f"fused with the retriever: {choice.describe()}", err=True)
    bar, update = progress_bar(n * permutations, "align rank", progress and sys.stderr.isatty())
    with bar:
        ranked = rank_split(ranker, dataset, rows, index=artifact, split=split, progress=update,
                            **settings)  # type: ignore[arg-type]
    if fusion is not None:
        from ulmrec_align.ranking.fusion import fuse

        ranked = [fuse(row, rows[(split, row.user_id)], float(fusion)) for row in ranked]
    write_rankings(out, ranked)
    typer.echo(_ranked_line(ranked, ranker, seconds=time.perf_counter() - start, method=method,
                            permutations=permutations, calibration=calibration), err=True)
    typer.echo(f"wrote {out}; score it with `ulmrec eval metrics {out} --split {split}`", err=True)


def _check_code_control(model: str, *, index_permute: int | None, index_random: int | None) -> None:
    """A tuned model ranks with the code control it was tuned with (``--index-permute``, ``--index-random``).
    """
    from ulmrec_align.models.train_manifest import read_train_manifest
    from ulmrec_eval.runtime.provenance import check_made_with

    made = read_train_manifest(model).samples_config
    check_made_with({f"--index-{k}": made.get(f"index_{k}") for k in ("permute", "random")},
                    {"--index-permute": index_permute, "--index-random": index_random}, artifact=model,
                    escape="--any-index")


def _check_ranker(ranker: Any, *, model: str, answer: AnswerKind | None, method: RankMethod,
                  permutations: int, has_index: bool, index_sha256: str | None, any_index: bool) -> None:
    """The options agree with how the model was tuned: its answer kind, per-candidate scoring (logits, one
    order), the added code tokens that need an index, and the index it was tuned with."""
    from ulmrec_eval.runtime.errors import InputError

    if answer is not None and ranker.tuned and ranker.prompt.answer != answer:
        raise InputError(f"the model was tuned to answer with a {ranker.prompt.answer}, not a {answer}; "
                         "drop --answer", path=model)
    if get_answer(ranker.prompt.answer).per_candidate and (method != "logits" or permutations > 1):
        raise InputError(f"a model that answers by {ranker.prompt.answer} scores each candidate on its own: "
                         "--method logits and --permutations 1 only")
    if not has_index and ranker.index_tokens == "added":
        raise InputError("the model was tuned with a user index (added code tokens): pass --index")
    tuned_with = ranker.index_sha256
    if ranker.tuned and not any_index and tuned_with != index_sha256:
        then = "no index" if tuned_with is None else f"the index {tuned_with[:12]}…"
        now = "no index" if index_sha256 is None else f"the index {index_sha256[:12]}…"
        raise InputError(f"the model was tuned with {then} but is asked to rank with {now}; give the index "
                         "it was tuned with, or --any-index to rank anyway", path=model)


def _ranked_line(ranked: list[Any], ranker: Any, *, seconds: float, method: RankMethod, permutations: int,
                 calibration: Calibration) -> str:
    """``ranked N users (how) in S s (U users/s)``, with the parse rate of generated rankings."""
    orders = f", {permutations} letter orders" if permutations > 1 else ""
    if calibration == "prior" and ranker.letter_prior is not None and method == "logits":
        orders += ", letter prior removed"
    how = get_answer(ranker.prompt.answer).scored_by or method
    line = (f"ranked {len(ranked)} users ({how}{orders}) in {seconds:.1f}s "
            f"({len(ranked) / seconds:.2f} users/s)")
    if method == "generate":
        parsed = sum(1 for r in ranked if r.parsed) / max(len(ranked), 1)
        line += f"; complete parsed rankings: {parsed:.1%}"
    return line
