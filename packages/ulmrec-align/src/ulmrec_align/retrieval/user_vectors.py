"""Collaborative user vectors from a trained retriever, for a user index built from behaviour instead of
review text (``ulmrec index build --vectors``).

Two kinds, both computed from each user's **training** prefix only (the items before the validation and
test targets), so that no evaluated interaction reaches the index:

* ``state``: the retriever's hidden state after the prefix, ``h_u`` (d,), the vector its next-item scores
  are ``h_u · E[1:]ᵀ + b``;
* ``item-mean``: the mean of the retriever's item embeddings over the prefix, ``mean_t E[i_t + 1]``.

The output folder holds ``vectors.safetensors`` (one float32 tensor ``vectors``, (U, d), rows in dense user
order) and ``ids.json`` (the raw user ids, same order), written whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_eval.runtime.artifacts import atomic_dir

VECTORS_FILE = "vectors.safetensors"
IDS_FILE = "ids.json"
Kind = Literal["state", "item-mean"]
KINDS: tuple[str, ...] = ("state", "item-mean")


def user_vectors(dataset: PreparedDataset, retriever_dir: str | Path, *, kind: Kind = "state",
                 device: str = "cpu", batch: int = 512) -> np.ndarray:
    """``(U, d)`` float32 vectors of every user of ``dataset`` (dense order) from the retriever in
    ``retriever_dir`` (its dataset identity is checked)."""
    from ulmrec_align.retrieval.saved import check_dataset, load_retriever

    retriever, _, saved = load_retriever(retriever_dir, device=device)
    check_dataset(saved, dataset, Path(retriever_dir))
    prefixes = [list(split.train) for split in dataset.splits]
    if kind == "item-mean":
        table = retriever.model.item_embedding.weight.detach().float().cpu()
        return np.stack([table[torch.tensor(p, dtype=torch.long) + 1].mean(0).numpy() if p
                         else np.zeros(table.shape[1], dtype=np.float32) for p in prefixes])
    parts = [retriever.user_states(prefixes[i:i + batch]).numpy() for i in range(0, len(prefixes), batch)]
    return np.concatenate(parts).astype(np.float32)


def write_user_vectors(out: str | Path, dataset: PreparedDataset, vectors: np.ndarray, *,
                       force: bool = False) -> Path:
    """Write ``vectors.safetensors`` + ``ids.json`` into ``out`` (whole or not at all)."""
    from safetensors.numpy import save_file

    if vectors.shape[0] != dataset.n_users:
        raise ValueError(f"{vectors.shape[0]} vectors for {dataset.n_users} users")
    with atomic_dir(out, force=force) as tmp:
        save_file({"vectors": np.ascontiguousarray(vectors, dtype=np.float32)}, str(tmp / VECTORS_FILE))
        (tmp / IDS_FILE).write_text(json.dumps([u.raw_id for u in dataset.users]) + "\n", encoding="utf-8")
    return Path(out)
