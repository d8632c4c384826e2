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
               index_random: int | None = None) -> list[RankRow]:
    """Rank every user of ``split`` (the first ``limit`` by dense id) among their retrieved candidates;
    ``permutations > 1`` averages over that many letter orders, ``calibrate`` removes the model's letter
    prior (:mod:`ulmrec_align.ranking.ranker`); ``index_permute`` shuffles the codes among users and
    ``index_random`` gives every user a random distinct code (controls, as in ``align build``)."""
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
    prompts = ranking_prompts(dataset, chosen, builder, codes, permutations=permutations)
    return rank_prompts(ranker, prompts, method=method, batch_size=batch_size, progress=progress,
                        calibrate=calibrate)


def write_rankings(path: str | Path, rows: list[RankRow]) -> int:
    """Write the predictions file (JSON lines, atomically)."""
    return atomic_write_jsonl(path, rows)
