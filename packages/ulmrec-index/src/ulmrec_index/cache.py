"""A content-addressed embedding cache: ``(model identity, sha256(text)) -> vector``, stored as safetensors.

Layout: ``<cache_dir>/<model_key>/shard-<hash>.safetensors``, each shard holding ``sha256`` ``(n, 32)`` uint8
and ``embeddings`` ``(n, D)`` float32. New vectors go to a new shard (written atomically); shards are merged
into one when there are more than :data:`MAX_SHARDS`. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ulmrec_eval.runtime.io import atomic_path

MAX_SHARDS = 16
log = logging.getLogger(__name__)


def text_sha256(text: str) -> bytes:
    """The 32-byte SHA-256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _shard_problem(tensors: dict[str, np.ndarray], dim: int | None) -> str | None:
    """What is wrong with a loaded shard's tensors, or None."""
    hashes, vectors = tensors.get("sha256"), tensors.get("embeddings")
    if hashes is None or vectors is None:
        return "missing the 'sha256' or 'embeddings' tensor"
    if hashes.dtype != np.uint8 or hashes.ndim != 2 or hashes.shape[1] != 32:
        return f"'sha256' has shape {hashes.shape} {hashes.dtype} (expected (n, 32) uint8)"
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[0] != hashes.shape[0]:
        return f"'embeddings' has shape {vectors.shape} {vectors.dtype} (expected ({len(hashes)}, D) float32)"
    if dim is not None and vectors.shape[1] != dim:
        return f"embedding size {vectors.shape[1]} differs from the other shards' {dim}"
    if not np.isfinite(vectors).all():
        return "non-finite embedding values"
    return None


def _read_shard(path: Path, dim: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """A shard's ``(sha256 (n, 32) uint8, embeddings (n, D) float32)``; a corrupt one is reported and removed.

    Corrupt: unreadable (truncated, not safetensors), tensors missing or of the wrong shape/dtype, a ``D``
    other than the other shards', or non-finite values. Its texts are then encoded again and re-stored.
    """
    try:
        tensors = load_file(str(path))
        problem = _shard_problem(tensors, dim)
    except Exception as exc:  # safetensors raises its own SafetensorError, plus OSError / ValueError
        text = str(exc).strip()
        problem = f"unreadable ({text.splitlines()[0] if text else type(exc).__name__})"
    if problem is None:
        return tensors["sha256"], tensors["embeddings"]
    log.warning("embedding cache shard %s is corrupt (%s): skipped and removed; its texts are encoded again",
                path, problem)
    path.unlink(missing_ok=True)
    return None


class EmbeddingCache:
    """Embeddings of one model, keyed by text hash."""

    def __init__(self, root: str | Path, model_key: str) -> None:
        self.folder = Path(root) / model_key
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []

    def _load(self) -> dict[bytes, tuple[int, int]]:
        if self._index is not None:
            return self._index
        index: dict[bytes, tuple[int, int]] = {}
        self._shards = []
        dim: int | None = None
        for shard_path in sorted(self.folder.glob("shard-*.safetensors")):
            loaded = _read_shard(shard_path, dim)
            if loaded is None:
                continue
            hashes, vectors = loaded
            dim = vectors.shape[1]
            shard_id = len(self._shards)
            self._shards.append(vectors)
            for row, digest in enumerate(hashes):
                index[digest.tobytes()] = (shard_id, row)
        self._index = index
        return index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, hashes: list[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``(found_mask (n,), vectors (n, D) or None)``; rows not found are zero."""
        index = self._load()
        found = np.array([h in index for h in hashes], dtype=bool)
        if not found.any():
            return found, None
        dim = self._shards[0].shape[1]
        out = np.zeros((len(hashes), dim), dtype=np.float32)
        for i, digest in enumerate(hashes):
            hit = index.get(digest)
            if hit is not None:
                out[i] = self._shards[hit[0]][hit[1]]
        return found, out

    def put(self, hashes: list[bytes], vectors: np.ndarray) -> None:
        """Store new vectors ``(n, D)`` (hashes already present are skipped)."""
        index = self._load()
        keep = [i for i, digest in enumerate(hashes) if digest not in index]
        if not keep:
            return
        digests = np.frombuffer(b"".join(hashes[i] for i in keep), dtype=np.uint8).reshape(len(keep), 32)
        values = np.ascontiguousarray(vectors[keep], dtype=np.float32)
        self._write_shard(digests, values)
        self._index = None
        if len(list(self.folder.glob("shard-*.safetensors"))) > MAX_SHARDS:
            self.compact()

    def _write_shard(self, digests: np.ndarray, values: np.ndarray) -> Path:
        name = hashlib.sha256(digests.tobytes()).hexdigest()[:16]
        target = self.folder / f"shard-{name}.safetensors"
        with atomic_path(target) as tmp:
            save_file({"sha256": digests, "embeddings": values}, str(tmp))
        return target

    def compact(self) -> None:
        """Merge every shard into one."""
        index = self._load()
        if not index:
            return
        old = sorted(self.folder.glob("shard-*.safetensors"))
        digests = np.frombuffer(b"".join(index), dtype=np.uint8).reshape(len(index), 32)
        values = np.stack([self._shards[s][r] for s, r in index.values()]).astype(np.float32)
        new = self._write_shard(digests, values)
        for path in old:
            if path != new:
                path.unlink(missing_ok=True)
        self._index = None
