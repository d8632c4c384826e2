"""SASRec behind the same Retriever interface: packing invariance, training, save/load, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.api import load_retriever, train_retriever
from ulmrec_align.retrieval.base import Retriever, SequenceRetriever
from ulmrec_align.retrieval.config import RetrieverConfig, SASRecConfig, TrainConfig
from ulmrec_align.retrieval.data import pack_histories
from ulmrec_align.retrieval.sasrec import SASRec
from ulmrec_align.retrieval.trainer import RetrieverProgress


def _config(**train: object) -> RetrieverConfig:
    settings: dict[str, object] = {"epochs": 2, "batch_size": 8, "seed": 3, "num_threads": 1}
    settings.update(train)
    return RetrieverConfig(model=SASRecConfig(hidden_size=8, num_heads=2, max_len=6),
                           train=TrainConfig.model_validate(settings))


def test_packed_and_left_padded_scores_agree() -> None:
    torch.manual_seed(0)
    model = SASRec(n_items=25, config=SASRecConfig(hidden_size=8, num_heads=2, max_len=6)).eval()
    histories = [[3, 4, 5, 6, 7, 8], [1], [20, 0, 12]]
    packed = pack_histories(histories, 6)
    with torch.no_grad():
        from_packed = model.packed_scores(torch.from_numpy(packed.tokens).unsqueeze(0),
                                          torch.from_numpy(packed.segments).unsqueeze(0),
                                          torch.from_numpy(packed.last))
        for width in (7, 10):
            rows = torch.tensor([[0] * (width - len(h)) + [i + 1 for i in h] for h in histories])
            torch.testing.assert_close(model.last_scores(rows), from_packed, atol=1e-5, rtol=0)


def test_sasrec_trains_saves_loads_and_resumes(tiny: PreparedDataset, tmp_path: Path) -> None:
    full = train_retriever(tiny, tmp_path / "a", _config(), show_progress=False)
    assert full.metrics["test"]["users"] == tiny.n_users

    def stop(progress: RetrieverProgress) -> None:
        if progress.global_step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_retriever(tiny, tmp_path / "b", _config(), show_progress=False, on_step=stop)
    train_retriever(tiny, tmp_path / "b", _config(), resume=True, show_progress=False)
    retriever, config, saved = load_retriever(tmp_path / "a")
    other, _, _ = load_retriever(tmp_path / "b")
    assert saved["kind"] == config.model.kind == "sasrec"
    assert isinstance(retriever, SequenceRetriever)
    assert isinstance(retriever, Retriever)
    for name, value in retriever.model.state_dict().items():
        assert torch.equal(value, other.model.state_dict()[name]), name
    scores = retriever.score_histories([list(s.test_input) for s in tiny.splits[:4]])
    assert scores.shape == (4, tiny.n_items)
    assert np.isfinite(scores.numpy()).all()
