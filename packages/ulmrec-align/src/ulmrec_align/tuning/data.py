"""Training examples: samples encoded once (prompt labelled -100), padded per batch (:class:`PadCollator`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ulmrec_align.prompts.encoding import IGNORE_INDEX, encode_sample
from ulmrec_align.prompts.index_tokens import IndexTokens


class EncodedDataset(torch.utils.data.Dataset):
    """In-memory list of ``{"input_ids", "labels"}`` (lists of ints); ``lengths`` for length grouping."""

    def __init__(self, rows: Sequence[dict[str, list[int]]]) -> None:
        self.rows = list(rows)
        self.lengths = [len(r["input_ids"]) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]


def encode_samples(tokenizer: Any, samples: Sequence[Any], *, index_tokens: IndexTokens,
                   max_length: int) -> EncodedDataset:
    """Encode each sample with :func:`ulmrec_align.prompts.encoding.encode_sample` (shared with ranking)."""
    rows = []
    for sample in samples:
        encoded = encode_sample(tokenizer, sample, index_tokens=index_tokens, max_length=max_length)
        rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels})
    return EncodedDataset(rows)


@dataclass(frozen=True)
class PadCollator:
    """Right-pads a batch to its longest row: ``input_ids`` with ``pad_id``, ``labels`` with -100, and an
    ``attention_mask`` of ones on real tokens. Shapes: (B, L_max) each."""

    pad_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.tensor(row["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.tensor(row["labels"], dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}
