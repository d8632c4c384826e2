"""The real MiniLM encoder (a few texts) and the embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ulmrec_index.cache import EmbeddingCache, text_sha256
from ulmrec_index.encoders import TextEncoder, model_identity, resolve_encoder_path

torch.set_num_threads(1)

TEXTS = ["Loves matte red lipstick.", "Buys argan oil for curly hair.", "Loves matte red lipstick."]


def test_encode_normalises_dedups_and_caches(tmp_path: Path) -> None:
    enc = TextEncoder(cache_dir=tmp_path)
    x = enc.encode(TEXTS)
    assert x.shape == (3, 384)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x[0], x[2])
    assert (enc.last_stats.n_unique, enc.last_stats.n_encoded, enc.last_stats.n_cached) == (2, 2, 0)

    again = TextEncoder(cache_dir=tmp_path)  # a fresh process would see the same
    y = again.encode([*TEXTS, "Uses beard oil."])
    assert again.last_stats.n_encoded == 1
    assert again.last_stats.n_cached == 2
    np.testing.assert_allclose(y[:3], x, atol=1e-6)
    third = TextEncoder(cache_dir=tmp_path)
    third.encode(TEXTS)
    assert third.last_stats.n_encoded == 0
    assert not third.loaded  # a full cache hit never loads the model


def test_long_texts_are_truncated_and_counted(tmp_path: Path) -> None:
    enc = TextEncoder(cache_dir=None)
    long = "lipstick " * 1000
    x = enc.encode([long, "short"])
    assert enc.last_stats.n_truncated == 1
    assert np.isfinite(x).all()
    # truncation at max_seq_length: only the first word pieces count
    cut = " ".join(long.split()[: enc.max_seq_length - 2])
    np.testing.assert_allclose(enc.encode([cut])[0], x[0], atol=1e-4)


def test_identity_depends_on_model_files_and_settings(tmp_path: Path) -> None:
    path = resolve_encoder_path(None)
    assert model_identity(path, normalize=True) == model_identity(path, normalize=True)
    assert model_identity(path, normalize=True) != model_identity(path, normalize=False)
    assert model_identity("some/hub-name", normalize=True).startswith("some--hub-name-")


def test_cache_shards_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ulmrec_index.cache.MAX_SHARDS", 2)
    cache = EmbeddingCache(tmp_path, "m")
    for i in range(4):
        cache.put([text_sha256(f"t{i}")], np.full((1, 3), i, dtype=np.float32))
    assert len(list((tmp_path / "m").glob("shard-*.safetensors"))) <= 2
    found, vectors = EmbeddingCache(tmp_path, "m").get([text_sha256(f"t{i}") for i in range(5)])
    assert found.tolist() == [True, True, True, True, False]
    assert vectors is not None
    assert vectors[:4, 0].tolist() == [0, 1, 2, 3]
    assert not list(tmp_path.rglob("*.pkl"))


@pytest.mark.slow
def test_multi_process_pool_matches_single_process(tmp_path: Path) -> None:
    texts = [f"{t} #{i}" for i in range(8) for t in TEXTS[:2]]
    single = TextEncoder(cache_dir=None).encode(texts)
    pooled_encoder = TextEncoder(cache_dir=tmp_path, workers=2, batch_size=4)
    pooled = pooled_encoder.encode(texts)
    assert pooled_encoder.last_stats.n_encoded == len(texts)
    np.testing.assert_allclose(pooled, single, atol=1e-5)
    # one text at a time (the default): the processes give the very bits of one process
    shared = TextEncoder(cache_dir=None, workers=2).encode(texts)
    assert np.array_equal(shared, single)
