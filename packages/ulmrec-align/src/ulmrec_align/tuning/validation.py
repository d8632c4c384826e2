"""Validation while tuning: NDCG@10 of the ranking task on shuffled-letter prompts, with the model's letter
prior (PriDe-style mean log-probability per letter) removed before ranking; and, for the tasks whose answer
is a user's code (preference → index, history → index), the response-token loss and the exact-match rate
(does the model write the whole code?).

A model tuned to answer with titles (``answer = "title"``) is validated on the likelihood of each
candidate's title instead, with the title's content-free prior removed as at ranking time
(:func:`ulmrec_align.ranking.ranker.title_priors`); ``raw`` is the NDCG@10 of the plain likelihoods.

A model tuned to answer by relevance is validated as it is tested: its validation candidates are the
retriever's top n in the retriever's order, with its scores; ``score`` is the NDCG@10 of the LLM's log-odds
fused with the retriever (:mod:`ulmrec_align.ranking.fusion`, ``W`` chosen on these validation users, as
``--fuse-retriever auto`` does at test), ``raw`` the NDCG@10 of the LLM alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ulmrec_align.tuning.config import RANKING_TASKS

#: Tasks whose answer is the user's code: alignment is learned when the model writes it.
CODE_TASKS = ("pref_to_index", "history_to_index")


def validation_samples(samples_dir: Path, limit: int | None) -> list[Any]:
    """The first ``limit`` validation samples of a ranking task (candidates with a target: lettered, or
    with their titles as ``choices``)."""
    from ulmrec_align.tasks.schema import read_samples

    if not (Path(samples_dir) / "valid.jsonl").is_file():
        return []
    rows = [s for s in read_samples(samples_dir, "valid")
            if s.task in RANKING_TASKS and s.candidates and (s.target_letter or s.choices)]
    return rows[:limit] if limit is not None else rows


def code_samples(samples_dir: Path, limit: int | None) -> list[Any]:
    """The first ``limit`` validation samples of each code-writing task (:data:`CODE_TASKS`)."""
    from ulmrec_align.tasks.schema import read_samples

    if not (Path(samples_dir) / "valid.jsonl").is_file():
        return []
    valid = read_samples(samples_dir, "valid")
    out: list[Any] = []
    for task in CODE_TASKS:
        rows = [s for s in valid if s.task == task]
        out += rows[:limit] if limit is not None else rows
    return out


def code_matches(model: Any, tokenizer: Any, samples: Sequence[Any], *, index_tokens: str,
                 batch_size: int, max_length: int = 4096) -> list[tuple[float, int, bool]]:
    """Per sample: ``(summed response-token loss, response tokens, exact)``, one teacher-forced pass.

    ``exact``: every response token is the model's argmax given the gold tokens before it — exactly the
    samples greedy decoding would reproduce token for token (``tests/align/tuning``).
    """
    import torch

    from ulmrec_align.tuning.data import PadCollator, encode_samples
    from ulmrec_align.tuning.loss import response_logits, token_losses

    dataset, _ = encode_samples(tokenizer, samples, index_tokens=index_tokens,  # type: ignore[arg-type]
                                max_length=max_length)
    collate = PadCollator(pad_id=int(tokenizer.pad_token_id))
    device = next(model.parameters()).device
    out: list[tuple[float, int, bool]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(dataset.rows), batch_size):
                batch = {k: v.to(device) for k, v in collate(dataset.rows[start:start + batch_size]).items()}
                logits, targets = response_logits(model, batch)
                loss, valid = token_losses(logits, targets)
                hit = (logits.argmax(dim=-1) == targets) | ~valid
                for i in range(len(targets)):
                    out.append((float((loss[i] * valid[i]).sum()), int(valid[i].sum()), bool(hit[i].all())))
    finally:
        model.train(was_training)
    return out


def code_task_scores(model: Any, tokenizer: Any, samples: Sequence[Any], *, index_tokens: str,
                     batch_size: int) -> dict[str, dict[str, float]]:
    """``task -> {"loss": mean response-token loss, "exact": share written exactly}`` of ``samples``."""
    matches = code_matches(model, tokenizer, samples, index_tokens=index_tokens, batch_size=batch_size)
    scores: dict[str, dict[str, float]] = {}
    for task in dict.fromkeys(s.task for s in samples):
        mine = [m for s, m in zip(samples, matches, strict=True) if s.task == task]
        tokens = sum(m[1] for m in mine)
        scores[task] = {"loss": round(sum(m[0] for m in mine) / max(tokens, 1), 5),
                        "exact": round(sum(m[2] for m in mine) / len(mine), 5)}
    return scores


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
                      batch_size: int, code: Sequence[Any] = (), answer: str = "letter",
                      ordered: bool = False) -> Any:
    """``validate(model) -> ValidationScores``: NDCG@10 of the letter ranking of ``samples`` after removing
    the letter prior estimated on the same prompts (:func:`letter_prior`; the samples show their candidates
    in a shuffled order, so neither a letter preference nor the retriever's order is rewarded) — or, with
    ``ordered`` (candidates in the retriever's order, ``align build --valid-order retriever``), without
    removing it —, the uncalibrated NDCG@10, and the prior; with ``code`` samples, also
    :func:`code_task_scores`."""
    import numpy as np

    from ulmrec_align.prompts.letters import letter_index
    from ulmrec_align.ranking.scorer import letter_log_probs, ndcg_at, score_samples
    from ulmrec_align.tuning.callbacks import ValidationScores

    if answer == "relevance":
        return _relevance_validator(tokenizer, samples, index_tokens=index_tokens, batch_size=batch_size,
                                    code=code)
    if any(s.choices for s in samples):
        return _title_validator(tokenizer, samples, index_tokens=index_tokens, batch_size=batch_size,
                                code=code)
    targets = [letter_index(s.target_letter) for s in samples]

    def validate(model: Any) -> ValidationScores:
        scores = score_samples(model, tokenizer, samples, index_tokens=index_tokens,  # type: ignore[arg-type]
                               batch_size=batch_size)
        prior = letter_prior(scores)
        logp = letter_log_probs(scores)
        calibrated = np.where(np.isfinite(logp), logp - prior[None, :], -np.inf)
        tasks = (code_task_scores(model, tokenizer, code, index_tokens=index_tokens, batch_size=batch_size)
                 if code else None)
        selected = scores if ordered else calibrated   # in the retriever's order the order is information
        return ValidationScores(score=ndcg_at(selected, targets, 10), raw=ndcg_at(scores, targets, 10),
                                prior=[round(float(v), 6) for v in prior], tasks=tasks)

    return validate


def _title_validator(tokenizer: Any, samples: Sequence[Any], *, index_tokens: str, batch_size: int,
                     code: Sequence[Any] = ()) -> Any:
    """``validate(model)``: NDCG@10 of the candidates ranked by the likelihood of their titles minus the
    titles' prior (``score``), and by the plain likelihood (``raw``)."""
    import numpy as np

    from ulmrec_align.prompts.encoding import encode_prompt
    from ulmrec_align.ranking.ranker import title_log_likelihoods, title_priors, without_prior
    from ulmrec_align.ranking.scorer import ndcg_at
    from ulmrec_align.tuning.callbacks import ValidationScores

    prompts = [encode_prompt(tokenizer, s.prompt, s.prompt_code_spans,
                             index_tokens=index_tokens)  # type: ignore[arg-type]
               for s in samples]
    texts = [list(s.choices) for s in samples]
    targets = [list(s.candidates).index(s.target) for s in samples]
    width = max(len(s.candidates) for s in samples)

    def as_array(rows: list[list[float]]) -> Any:
        out = np.full((len(rows), width), -np.inf)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def validate(model: Any) -> ValidationScores:
        raw = title_log_likelihoods(model, tokenizer, prompts, texts, batch_size=batch_size)
        prior = title_priors(model, tokenizer, [t for row in texts for t in row], batch_size=batch_size)
        calibrated = without_prior(raw, texts, prior)
        tasks = (code_task_scores(model, tokenizer, code, index_tokens=index_tokens, batch_size=batch_size)
                 if code else None)
        return ValidationScores(score=ndcg_at(as_array(calibrated), targets, 10),
                                raw=ndcg_at(as_array(raw), targets, 10), prior=None, tasks=tasks)

    return validate


def _relevance_validator(tokenizer: Any, samples: Sequence[Any], *, index_tokens: str, batch_size: int,
                         code: Sequence[Any] = ()) -> Any:
    """``validate(model)``: NDCG@10 of the relevance log-odds fused with the retriever's scores at the ``W``
    best on these users (``score``: how the test ranks), and of the log-odds alone (``raw``, which selects the
    adapter: :attr:`~ulmrec_align.models.train_manifest.ValidationPoint.selection_key`)."""
    from ulmrec_align.prompts.encoding import candidate_ids, encode_prompt, relevance_token_ids
    from ulmrec_align.ranking.fusion import best_weight, fused_ndcg_at_10
    from ulmrec_align.ranking.scorer import relevance_scores
    from ulmrec_align.tuning.callbacks import ValidationScores
    from ulmrec_eval.runtime.errors import InputError

    if any(s.retriever_scores is None for s in samples):
        raise InputError("relevance validation needs the retriever's scores in the validation samples; "
                         "rebuild them with this version's `ulmrec align build --answer relevance`")
    prompts = [encode_prompt(tokenizer, s.prompt, s.prompt_code_spans,
                             index_tokens=index_tokens)  # type: ignore[arg-type]
               for s in samples]
    continuations = [candidate_ids(tokenizer, s.choices, "relevance") for s in samples]
    retriever = [list(s.retriever_scores) for s in samples]
    targets = [list(s.candidates).index(s.target) for s in samples]
    yes_id, no_id = relevance_token_ids(tokenizer)

    def validate(model: Any) -> ValidationScores:
        llm = relevance_scores(model, prompts, continuations, yes_id=yes_id, no_id=no_id,
                               pad_id=int(tokenizer.pad_token_id or 0), batch_size=batch_size)
        weight, by_weight = best_weight(llm, retriever, targets)
        tasks = (code_task_scores(model, tokenizer, code, index_tokens=index_tokens, batch_size=batch_size)
                 if code else None)
        flat = [[0.0] * len(r) for r in retriever]
        return ValidationScores(score=by_weight[weight], raw=fused_ndcg_at_10(llm, flat, targets, 0.0),
                                prior=None, tasks=tasks, weight=weight)

    return validate
