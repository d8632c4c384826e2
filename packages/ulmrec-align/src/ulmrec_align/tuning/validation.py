"""Validation while tuning: NDCG@10 of the ranking task on shuffled-letter prompts, with the model's letter
prior (PriDe-style mean log-probability per letter) removed before ranking."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ulmrec_align.tuning.config import RANKING_TASKS


def validation_samples(samples_dir: Path, limit: int | None) -> list[Any]:
    """The first ``limit`` validation samples of a ranking task (lettered candidates with a target)."""
    from ulmrec_align.tasks.schema import read_samples

    if not (Path(samples_dir) / "valid.jsonl").is_file():
        return []
    rows = [s for s in read_samples(samples_dir, "valid")
            if s.task in RANKING_TASKS and s.candidates and s.target_letter]
    return rows[:limit] if limit is not None else rows


def letter_prior(scores: Any) -> Any:
    """Per-letter log-probability prior: the mean over rows of ``log_softmax`` of each row's letter scores
    (rows (n, L), ``-inf`` past a row's letters; a letter is averaged over the rows that have it).

    On prompts whose candidates sit at random letters, a candidate's content is independent of its letter, so
    the mean log-probability of a letter is its content-free preference (PriDe, Zheng et al. 2024).
    """
    import numpy as np

    from ulmrec_align.ranking.scorer import letter_log_probs

    logp = letter_log_probs(scores)
    finite = np.isfinite(logp)
    counts = finite.sum(axis=0)
    total = np.where(finite, logp, 0.0).sum(axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), 0.0)


def ranking_validator(tokenizer: Any, samples: Sequence[Any], *, index_tokens: str,
                      batch_size: int) -> Any:
    """``validate(model) -> ValidationScores``: NDCG@10 of the letter ranking of ``samples`` after removing
    the letter prior estimated on the same prompts (:func:`letter_prior`; the samples show their candidates
    in a shuffled order, so neither a letter preference nor the retriever's order is rewarded), the
    uncalibrated NDCG@10, and the prior."""
    import numpy as np

    from ulmrec_align.prompts.letters import letter_index
    from ulmrec_align.ranking.scorer import letter_log_probs, ndcg_at, score_samples
    from ulmrec_align.tuning.callbacks import ValidationScores

    targets = [letter_index(s.target_letter) for s in samples]

    def validate(model: Any) -> ValidationScores:
        scores = score_samples(model, tokenizer, samples, index_tokens=index_tokens,  # type: ignore[arg-type]
                               batch_size=batch_size)
        prior = letter_prior(scores)
        logp = letter_log_probs(scores)
        calibrated = np.where(np.isfinite(logp), logp - prior[None, :], -np.inf)
        return ValidationScores(score=ndcg_at(calibrated, targets, 10), raw=ndcg_at(scores, targets, 10),
                                prior=[round(float(v), 6) for v in prior])

    return validate
