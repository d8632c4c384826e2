"""RetrieverConfig: the selection metric must be one that validation computes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ulmrec_align.retrieval.config import CandidateConfig, RetrieverConfig, TrainConfig


def test_best_metric_k_must_be_among_metric_ks() -> None:
    with pytest.raises(ValidationError, match=r"best_metric 'ndcg@50' needs K=50 among candidates.metric_ks"):
        RetrieverConfig(train=TrainConfig(best_metric="ndcg@50"))
    config = RetrieverConfig(train=TrainConfig(best_metric="ndcg@50"),
                             candidates=CandidateConfig(metric_ks=(10, 50)))
    assert config.train.best_metric == "ndcg@50"
    assert RetrieverConfig(train=TrainConfig(best_metric="hit@5")).train.best_metric == "recall@5"


def test_a_model_table_without_kind_is_lrurec() -> None:
    from ulmrec_align.retrieval.config import LRURecConfig, RetrieverConfig

    config = RetrieverConfig.model_validate({"model": {"hidden_size": 8}})
    assert isinstance(config.model, LRURecConfig)
    assert config.model.hidden_size == 8
    assert RetrieverConfig.model_validate({"model": {"kind": "sasrec"}}).model.kind == "sasrec"
