"""On real Amazon Beauty preference texts (first 600 users): our codes are more coherent than the paper's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ulmrec_index import IndexerConfig, UserIndexer


@pytest.mark.slow
def test_beauty_subset_beats_the_reference_on_coherence(beauty_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    lines = (beauty_dir / "beauty.user").read_text(encoding="utf-8").splitlines()[1:601]
    users = [{"user_id": uid, "texts": [text]} for uid, _, text in (line.partition("\t") for line in lines)]
    reference = json.loads((beauty_dir / "reference_user_index.json").read_text(encoding="utf-8"))
    config = IndexerConfig.model_validate({
        "quantizer": {"kind": "rqvae", "levels": 3, "codebook_size": 16, "batch_size": 64},
        "cache_dir": tmp_path / "cache",
        "joint_epochs": 3,
    })
    indexer = UserIndexer(config).fit(users, reference=reference)
    report = indexer.report
    assert report is not None
    assert report.reference is not None
    assert report.reference_users_matched == 600
    assert report.repair.collisions_after == 0
    ours, theirs = report.ours.coherence[0].ratio, report.reference.coherence[0].ratio
    assert ours is not None
    assert theirs is not None
    assert ours > theirs
    base_levels = report.ours.levels[:3]  # an extra disambiguation level, if any, comes after these
    assert min(level.used for level in base_levels) >= 14
