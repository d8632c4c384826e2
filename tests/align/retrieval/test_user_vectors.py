"""Collaborative user vectors (`retrieve user-vectors`): the retriever's own scoring vector after each user's
training prefix, or the mean of its item embeddings; never anything after the prefix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.api import load_retriever, train_retriever
from ulmrec_align.retrieval.config import LRURecConfig, RetrieverConfig, TrainConfig
from ulmrec_align.retrieval.user_vectors import IDS_FILE, VECTORS_FILE, user_vectors, write_user_vectors
from ulmrec_eval.runtime.artifacts import ArtifactExistsError


@pytest.fixture
def trained(tiny: PreparedDataset, tmp_path: Path) -> Path:
    config = RetrieverConfig(model=LRURecConfig(hidden_size=8, max_len=6),
                             train=TrainConfig(epochs=2, batch_size=8, seed=7, num_threads=1,
                                               eval_batch_size=16))
    train_retriever(tiny, tmp_path / "R", config, show_progress=False)
    return tmp_path / "R"


def test_state_vectors_are_the_retrievers_scoring_vectors_of_the_training_prefix(
        tiny: PreparedDataset, trained: Path) -> None:
    retriever, _, _ = load_retriever(trained)
    vectors = user_vectors(tiny, trained, kind="state")
    assert vectors.shape == (tiny.n_users, 8)
    assert vectors.dtype == np.float32
    prefixes = [list(s.train) for s in tiny.splits]
    model = retriever.model
    scores = torch.from_numpy(vectors) @ model.item_embedding.weight[1:].T.detach() + model.item_bias.detach()
    torch.testing.assert_close(scores, retriever.score_histories(prefixes), rtol=1e-4, atol=1e-4)
    # nothing after the training prefix: the state of the whole sequence (valid and test items read) differs
    full = retriever.user_states([[*s.train, s.valid_target, s.test_target] for s in tiny.splits])
    assert not np.allclose(full.numpy(), vectors, atol=1e-4)


def test_item_mean_is_the_mean_item_embedding_of_the_prefix(tiny: PreparedDataset, trained: Path) -> None:
    retriever, _, _ = load_retriever(trained)
    vectors = user_vectors(tiny, trained, kind="item-mean")
    table = retriever.model.item_embedding.weight.detach().numpy()
    split = tiny.splits[3]
    np.testing.assert_allclose(vectors[3], table[np.asarray(split.train) + 1].mean(0), rtol=1e-5, atol=1e-6)


def test_written_folder_feeds_index_build(tiny: PreparedDataset, trained: Path, tmp_path: Path) -> None:
    from ulmrec_index.vectors import read_ids, read_vectors

    out = tmp_path / "V"
    write_user_vectors(out, tiny, user_vectors(tiny, trained))
    ids = json.loads((out / IDS_FILE).read_text())
    assert ids == [u.raw_id for u in tiny.users]
    assert load_file(str(out / VECTORS_FILE))["vectors"].shape == (tiny.n_users, 8)
    assert read_ids(out / IDS_FILE) == ids                        # what `index build --ids` reads
    assert tuple(read_vectors(out / VECTORS_FILE).shape) == (tiny.n_users, 8)
    with pytest.raises(ArtifactExistsError, match="--force"):
        write_user_vectors(out, tiny, user_vectors(tiny, trained))
