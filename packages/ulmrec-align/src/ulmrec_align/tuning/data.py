"""Training examples: samples encoded once (prompt labelled -100), left-padded per batch
(:class:`PadCollator`), one draw of negatives per epoch (:class:`DrawSampler`)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ulmrec_align.prompts.encoding import IGNORE_INDEX, candidate_ids, encode_sample
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.ranking.fusion import standardise
from ulmrec_eval.runtime.errors import InputError


class EncodedDataset(torch.utils.data.Dataset):
    """In-memory list of ``{"input_ids", "labels", "n_letters", "task_id", "prompt_length"}`` (+
    ``"choice_ids"``, ``"choice_target"`` for samples answered by title that carry their pool); ``lengths``
    for length grouping; ``tasks[task_id]`` names the task of a row; ``draws[i]`` is row i's draw of
    negatives (``align build --negative-draws``; all 0 without redraws)."""

    def __init__(self, rows: Sequence[dict[str, Any]], tasks: Sequence[str] = (),
                 draws: Sequence[int] = ()) -> None:
        self.rows = list(rows)
        self.lengths = [len(r["input_ids"]) for r in self.rows]
        self.tasks = list(tasks)
        self.draws = list(draws) or [0] * len(self.rows)

    @property
    def redrawn(self) -> bool:
        """Whether some rows are later draws of negatives (training then takes one draw per epoch)."""
        return any(self.draws)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]


@dataclass(frozen=True)
class EncodingReport:
    """How many prompts ``max_length`` cut (from the left), of how many."""

    cut: int
    total: int


def encode_samples(tokenizer: Any, samples: Sequence[Any], *, index_tokens: IndexTokens,
                   max_length: int, answer: str = "letter") -> tuple[EncodedDataset, EncodingReport]:
    """Encode each sample with :func:`ulmrec_align.prompts.encoding.encode_sample` (shared with ranking);
    ranking samples carry ``n_letters`` = their number of candidates (0 otherwise). Samples answered by title
    or relevance with a pool (``choices``) also carry each candidate's ids as the ranker reads them
    (:func:`~ulmrec_align.prompts.encoding.candidate_ids`) and the target's position among them; with the
    retriever's scores of the pool, their standardisation ``z(r)`` (``choice_prior``)."""
    rows = []
    tasks: list[str] = []
    draws: list[int] = []
    cut = 0
    for sample in samples:
        encoded = encode_sample(tokenizer, sample, index_tokens=index_tokens, max_length=max_length)
        cut += int(encoded.cut)
        if sample.task not in tasks:
            tasks.append(sample.task)
        ranking = bool(sample.candidates) and sample.target_letter is not None
        row = {"input_ids": encoded.input_ids, "labels": encoded.labels,
               "n_letters": len(sample.candidates) if ranking else 0,
               "task_id": tasks.index(sample.task), "prompt_length": encoded.prompt_length}
        if sample.choices and sample.candidates and sample.target in sample.candidates:
            row["choice_ids"] = candidate_ids(tokenizer, sample.choices, answer)
            row["choice_target"] = sample.candidates.index(sample.target)
            if sample.retriever_scores is not None:
                row["choice_prior"] = standardise(sample.retriever_scores).tolist()
        rows.append(row)
        draws.append(sample.draw)
    return EncodedDataset(rows, tasks, draws), EncodingReport(cut=cut, total=len(rows))


class DrawSampler(torch.utils.data.Sampler[int]):
    """The training order of samples built with ``align build --negative-draws K``: epoch ``e`` takes the
    rows of draw ``e mod K`` of each redrawn task (every prefix once, with that draw's negatives) and every
    row of the other tasks, shuffled with ``(seed, e)``. Its length is one such epoch, so the Trainer's steps
    per epoch, and the schedule sized to them (:mod:`ulmrec_align.tuning.schedule`), count one draw.

    The Trainer calls :meth:`set_epoch` before each epoch (through Accelerate's data loader, also when it
    skips the batches a resumed epoch already trained); the order is a function of the epoch alone, the same
    in every process.

    >>> sampler = DrawSampler(draws=[0, 1, 0, 1, 0], tasks=[0, 0, 0, 0, 1], seed=0)
    >>> len(sampler), sorted(sampler)
    (3, [0, 2, 4])
    >>> sampler.set_epoch(1); sorted(sampler)
    [1, 3, 4]
    """

    def __init__(self, *, draws: Sequence[int], tasks: Sequence[int], seed: int) -> None:
        if len(draws) != len(tasks):
            raise ValueError(f"{len(draws)} draws for {len(tasks)} rows")
        self.k = max(draws, default=0) + 1
        redrawn = {task for task, draw in zip(tasks, draws, strict=True) if draw > 0}
        self._by_draw = [[i for i, (task, d) in enumerate(zip(tasks, draws, strict=True))
                          if task not in redrawn or d == draw] for draw in range(self.k)]
        if len({len(rows) for rows in self._by_draw}) > 1:
            sizes = ", ".join(str(len(rows)) for rows in self._by_draw)
            raise InputError(f"train.jsonl: the draws of negatives hold different numbers of samples "
                             f"({sizes}); rebuild it with `ulmrec align build --negative-draws {self.k}`")
        self.seed = seed
        self.epoch = 0

    @classmethod
    def of(cls, dataset: EncodedDataset, *, seed: int) -> DrawSampler:
        return cls(draws=dataset.draws, tasks=[int(r["task_id"]) for r in dataset.rows], seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_rows(self, epoch: int) -> list[int]:
        """The row indices of epoch ``epoch``, in their training order."""
        rows = list(self._by_draw[epoch % self.k])
        random.Random(f"{self.seed}/{epoch}").shuffle(rows)
        return rows

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_rows(self.epoch))

    def __len__(self) -> int:
        return len(self._by_draw[0])


@dataclass(frozen=True)
class PadCollator:
    """Left-pads a batch to its longest row, so every response ends at the last position (the loss then
    projects only the last positions onto the vocabulary, :mod:`ulmrec_align.tuning.loss`).

    Returns ``input_ids`` (pad ``pad_id``), ``labels`` (pad -100), ``attention_mask`` (1 on real tokens) and
    ``position_ids`` (``cumsum(mask) − 1``), each (B, L_max); ``n_letters`` and ``task_ids``, (B,).

    With ``choices`` (``--loss choices``), when some rows carry ``choice_ids`` (R of them, at most N choices
    of at most T ids): ``choice_rows`` (R,) their batch positions, ``choice_prompt_ids`` /
    ``choice_prompt_mask`` (R, P) their prompts left-padded, ``choice_ids`` / ``choice_mask`` (R, N, T) the
    choices right-padded (a missing choice is all mask 0) and ``choice_target`` (R,); with ``null_prompt``
    (the content-free prompt whose choice likelihoods are the title prior) also ``choice_null_ids`` (1, P₀).
    With ``prior_weight`` β > 0 (``--retriever-prior``): ``choice_offset`` (R, N), ``β · z(retriever)`` of
    each choice (0 past a row's pool), which the relevance loss adds to the LLM's scores.
    """

    pad_id: int
    pad_to_multiple_of: int | None = None
    choices: bool = False
    null_prompt: tuple[int, ...] | None = None
    prior_weight: float = 0.0

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, width - n:] = torch.tensor(row["input_ids"], dtype=torch.long)
            labels[i, width - n:] = torch.tensor(row["labels"], dtype=torch.long)
            mask[i, width - n:] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": mask, "position_ids": positions,
                 "n_letters": torch.tensor([int(r.get("n_letters", 0)) for r in rows], dtype=torch.long),
                 "task_ids": torch.tensor([int(r.get("task_id", 0)) for r in rows], dtype=torch.long)}
        chosen = [i for i, r in enumerate(rows) if r.get("choice_ids")] if self.choices else []
        if chosen:
            batch.update(self._choices([rows[i] for i in chosen]))
            batch["choice_rows"] = torch.tensor(chosen, dtype=torch.long)
            if self.null_prompt:
                batch["choice_null_ids"] = torch.tensor([list(self.null_prompt)], dtype=torch.long)
        return batch

    def _choices(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        prompts = [r["input_ids"][: r["prompt_length"]] for r in rows]
        width = max(len(p) for p in prompts)
        prompt_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        prompt_mask = torch.zeros((len(rows), width), dtype=torch.long)
        n = max(len(r["choice_ids"]) for r in rows)
        t = max(len(c) for r in rows for c in r["choice_ids"])
        choice_ids = torch.full((len(rows), n, t), self.pad_id, dtype=torch.long)
        choice_mask = torch.zeros((len(rows), n, t), dtype=torch.long)
        for i, (prompt, row) in enumerate(zip(prompts, rows, strict=True)):
            prompt_ids[i, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            prompt_mask[i, width - len(prompt):] = 1
            for j, ids in enumerate(row["choice_ids"]):
                choice_ids[i, j, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                choice_mask[i, j, : len(ids)] = 1
        out = {"choice_prompt_ids": prompt_ids, "choice_prompt_mask": prompt_mask, "choice_ids": choice_ids,
               "choice_mask": choice_mask,
               "choice_target": torch.tensor([int(r["choice_target"]) for r in rows], dtype=torch.long)}
        if self.prior_weight > 0:
            offset = torch.zeros((len(rows), n), dtype=torch.float32)
            for i, row in enumerate(rows):
                if "choice_prior" not in row:
                    raise ValueError("a pool without the retriever's scores in a batch trained with "
                                     "--retriever-prior")
                offset[i, : len(row["choice_prior"])] = self.prior_weight * torch.tensor(row["choice_prior"])
            out["choice_offset"] = offset
        return out
