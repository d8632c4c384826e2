"""Per-user texts for the indexer: ``USERS.jsonl`` lines ``{"user_id": <raw id>, "texts": [...]}``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ulmrec_align.data.prepared import PreparedDataset, refuse_dataset_file
from ulmrec_eval.runtime.artifacts import ArtifactExistsError, folder_lock
from ulmrec_eval.runtime.io import atomic_write_jsonl


def user_texts_records(dataset: PreparedDataset, *, skip_empty: bool = False) -> Iterator[dict[str, Any]]:
    """One record per user in dense-id order: the raw user id and the texts kept by ``prepare``.

    The texts come from training interactions only (or the RecBole ``preference`` sentence), so an index built
    from them never saw the validation or test item's review. ``skip_empty`` leaves out users without texts.
    """
    for user in dataset.users:
        if skip_empty and not user.texts:
            continue
        yield {"user_id": user.raw_id, "texts": list(user.texts)}


def write_users_jsonl(dataset: PreparedDataset, path: str | Path, *, skip_empty: bool = False,
                      force: bool = True) -> int:
    """Write :func:`user_texts_records` atomically to ``path``; returns the number of lines.

    A prepared dataset's own files are never written; an existing ``path`` needs ``force`` (the command
    line's ``--force``; the library default replaces it).
    """
    target = Path(path)
    refuse_dataset_file(target)
    with folder_lock(target):
        if target.exists() and not force:
            raise ArtifactExistsError(f"{target} exists; pass --force to replace it")
        return atomic_write_jsonl(target, user_texts_records(dataset, skip_empty=skip_empty))
