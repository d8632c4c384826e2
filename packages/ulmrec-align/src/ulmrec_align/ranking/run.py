"""``ulmrec align rank`` as a function: inputs checked, prompts built, users ranked, predictions written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.ranking.ranker import Method, RankingModel, RankRow, rank_prompts, ranking_prompts
from ulmrec_align.retrieval.candidates import CandidateRow
from ulmrec_align.tasks.build import check_candidates, control_codes, user_codes
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_jsonl
from ulmrec_index.artifact import IndexArtifact


@dataclass(frozen=True)
class RankSummary:
    users: int
    seconds: float
    parsed_share: float | None


def rank_split(ranker: RankingModel, dataset: PreparedDataset, rows: dict[tuple[str, int], CandidateRow], *,
               index: IndexArtifact | None, split: str, method: Method = "logits", limit: int | None = None,
               batch_size: int = 8, candidates_path: str | Path = "candidates",
               progress: Callable[[int], None] | None = None, permutations: int = 1,
               calibrate: bool = True, index_permute: int | None = None,
               index_random: int | None = None, retrieved_only: bool = False) -> list[RankRow]:
    """Rank every user of ``split`` (the first ``limit`` by dense id) among their retrieved candidates;
    ``permutations > 1`` averages over that many letter orders, ``calibrate`` removes the model's letter
    prior (:mod:`ulmrec_align.ranking.ranker`); ``index_permute`` shuffles the codes among users and
    ``index_random`` gives every user a random distinct code (controls, as in ``align build``).

    ``retrieved_only``: a user whose target is not among the candidates the LLM would rank scores 0 on every
    metric whatever their order, so no LLM pass is spent on them: their row keeps the retriever's order and
    scores (``source = "retriever:target-not-retrieved"``). Metrics are identical; LlamaRec scores only the
    others."""
    check_candidates(dataset, rows, candidates_path)
    chosen = sorted((row for (s, _), row in rows.items() if s == split), key=lambda r: r.user_id)
    if not chosen:
        raise InputError(f"no {split!r} rows in the candidates file", path=candidates_path)
    if limit is not None:
        chosen = chosen[:limit]
    if ranker.index_tokens == "added" and index is not None:
        missing = [t for t in (index.token_format[0].format(0),) if t not in ranker.tokenizer.get_vocab()]
        if missing:
            raise InputError("the model was not tuned with added code tokens; use --index-tokens plain")
    builder = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles(),
                            index_tokens=ranker.index_tokens if index is not None else "plain")
    codes = (control_codes(user_codes(dataset, index), index, permute=index_permute, random_seed=index_random)
             if index is not None else None)
    n = ranker.prompt.n_candidates
    missed = {r.user_id for r in chosen if retrieved_only and r.target not in r.candidates[:n]}
    prompts = ranking_prompts(dataset, [r for r in chosen if r.user_id not in missed], builder, codes,
                              permutations=permutations)
    ranked = {r.user_id: r for r in rank_prompts(ranker, prompts, method=method, batch_size=batch_size,
                                                  progress=progress, calibrate=calibrate)}
    for row in chosen:
        if row.user_id in missed:
            ranked[row.user_id] = RankRow(
                user_id=row.user_id, raw_user_id=row.raw_user_id, split=row.split, target=row.target,
                candidates=row.candidates[:n], scores=row.scores[:n], source="retriever:target-not-retrieved",
                history_length=row.history_length, retrieved_n=len(row.candidates[:n]),
                cold_start=ranker.is_cold(row.raw_user_id))
    return [ranked[row.user_id] for row in chosen]


def write_rankings(path: str | Path, rows: list[RankRow]) -> int:
    """Write the predictions file (JSON lines, atomically)."""
    return atomic_write_jsonl(path, rows)
