"""Read and write prepared-dataset folders (see :mod:`ulmrec_align.data.schema` for the format)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ulmrec_align.data.schema import ItemRecord, PreparedManifest, UserRecord, UserSequence
from ulmrec_align.data.split import UserSplit, leave_one_out, split_sha256
from ulmrec_eval.runtime.artifacts import atomic_dir, check_out_apart, check_writable
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_write_json, atomic_write_jsonl, read_json_model, read_jsonl_models

MANIFEST = "manifest.json"
ITEMS = "items.jsonl"
USERS = "users.jsonl"
SEQUENCES = "sequences.jsonl"
#: The files of a prepared folder (nothing else may write them: see :func:`refuse_dataset_file`).
DATASET_FILES = (MANIFEST, ITEMS, USERS, SEQUENCES)


def _refuse_other_manifests(folder: Path, manifest_path: Path) -> None:
    """A clear line when ``folder``'s manifest, unreadable as a prepared dataset's, is another artifact's (a
    pipeline stage, an index ...); returns when it is not."""
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # read_json_model reports it with file and line
    if not isinstance(raw, dict):
        return
    if "stage" in raw and "kind" not in raw:
        hint = folder / "dataset"
        where = f"; its prepared dataset is {hint}" if (hint / MANIFEST).is_file() else ""
        raise InputError(f"this is the folder of the pipeline stage {raw['stage']!r}, not a prepared "
                         f"dataset{where}", path=folder)
    kind = raw.get("kind")
    if isinstance(kind, str) and kind != "prepared-dataset":
        raise InputError(f"this is a {kind!r} artifact, not a prepared dataset (`ulmrec data prepare`)",
                         path=folder)



def refuse_dataset_file(path: str | Path) -> None:
    """Refuse to write ``path`` when it is one of a prepared dataset's own files (the folder holds a
    ``manifest.json``): overwriting it would break every later command on that dataset."""
    target = Path(path).resolve()
    if target.name in DATASET_FILES and (target.parent / MANIFEST).is_file():
        raise InputError(f"{path} is a file of the prepared dataset {target.parent}; write elsewhere")


def check_prepare_output(out: Path, source: Path, *, force: bool) -> None:
    """Before reading anything: ``out`` must not hold (or be) the raw input, and needs ``force`` when it
    already holds files (the early form of the check :meth:`PreparedDataset.save` repeats under its lock)."""
    check_out_apart(out, {"--path": source})
    check_writable(out, force=force)


@dataclass
class PreparedDataset:
    """A prepared dataset in memory: items, users and sequences indexed by dense id."""

    manifest: PreparedManifest
    items: list[ItemRecord]
    users: list[UserRecord]
    sequences: list[UserSequence]
    path: Path | None = field(default=None, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def splits(self) -> list[UserSplit]:
        """Leave-one-out split of every user, indexed by dense user id."""
        return [leave_one_out(seq.user_id, seq.items) for seq in self.sequences]

    def titles(self) -> list[str]:
        """Item titles indexed by dense item id."""
        return [item.title for item in self.items]

    def compute_split_sha256(self) -> str:
        """Hash of the canonical split in raw ids (must equal ``manifest.split_sha256``)."""
        raw_item = [item.raw_id for item in self.items]
        rows = [
            (self.users[s.user_id].raw_id, [raw_item[i] for i in s.train], raw_item[s.valid_target],
             raw_item[s.test_target])
            for s in self.splits
        ]
        return split_sha256(rows)

    def validate(self) -> None:
        """Check dense ids are contiguous and consistent; raise :class:`InputError` naming the problem."""
        where = self.path or "<memory>"
        for name, records, key in (("items", self.items, "item_id"), ("users", self.users, "user_id"),
                                   ("sequences", self.sequences, "user_id")):
            for position, record in enumerate(records):
                if getattr(record, key) != position:
                    raise InputError(f"{name}: expected {key} {position} at row {position + 1}, "
                                     f"got {getattr(record, key)}", path=where)
        if len(self.sequences) != len(self.users):
            raise InputError(f"{len(self.users)} users but {len(self.sequences)} sequences", path=where)
        for seq in self.sequences:
            n = len(seq.items)
            per_item = (seq.timestamps, seq.ratings, seq.reviews, seq.summaries)
            if any(values is not None and len(values) != n for values in per_item):
                raise InputError(f"user {seq.user_id}: items/timestamps/ratings/reviews/summaries lengths "
                                 "differ", path=where)
            if seq.items and (min(seq.items) < 0 or max(seq.items) >= self.n_items):
                raise InputError(f"user {seq.user_id}: item id out of range [0, {self.n_items})", path=where)

    def save(self, out_dir: str | Path, *, force: bool = False) -> Path:
        """Write the folder whole or not at all (:func:`ulmrec_eval.runtime.artifacts.atomic_dir`: built
        beside ``out_dir`` under a lock, then swapped in); a non-empty ``out_dir`` needs ``force``."""
        out = Path(out_dir)
        with atomic_dir(out, force=force) as tmp:
            atomic_write_jsonl(tmp / ITEMS, self.items)
            atomic_write_jsonl(tmp / USERS, self.users)
            atomic_write_jsonl(tmp / SEQUENCES, self.sequences)
            atomic_write_json(tmp / MANIFEST, self.manifest.model_dump(mode="json"))
        self.path = out
        return out

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> PreparedDataset:
        """Load a prepared folder; ``verify`` re-checks ids and the split hash against the manifest."""
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise InputError("not a prepared dataset (no manifest.json); run `ulmrec data prepare` first",
                             path=folder)
        try:
            manifest = read_json_model(manifest_path, PreparedManifest)
        except InputError:
            _refuse_other_manifests(folder, manifest_path)   # another artifact's manifest: say which
            raise
        dataset = cls(
            manifest=manifest,
            items=list(read_jsonl_models(folder / ITEMS, ItemRecord)),
            users=list(read_jsonl_models(folder / USERS, UserRecord)),
            sequences=list(read_jsonl_models(folder / SEQUENCES, UserSequence)),
            path=folder,
        )
        if verify:
            dataset.validate()
            actual = dataset.compute_split_sha256()
            if actual != manifest.split_sha256:
                raise InputError(f"split hash {actual[:12]}… does not match the manifest's "
                                 f"{manifest.split_sha256[:12]}… (files edited or truncated, or prepared "
                                 "before the split hash became JSON-encoded: run prepare again)", path=folder)
        return dataset
