"""rqkmeans: the shared conformance suite plus its exact residual properties."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ulmrec_index.quantizers import create_quantizer
from ulmrec_index.testing import QuantizerConformance, conformance_data


class TestRQKMeansConformance(QuantizerConformance):
    config: ClassVar[dict[str, Any]] = {
        "kind": "rqkmeans", "levels": 2, "codebook_size": 8, "balanced": "none"}
    error_rtol = 0.0  # residual k-means: the extra level's Lloyd step can only lower the training error


class TestRQKMeansBalancedConformance(QuantizerConformance):
    # the default: a balanced last level
    config: ClassVar[dict[str, Any]] = {"kind": "rqkmeans", "levels": 2, "codebook_size": 8}
    error_rtol = 0.05


def test_first_levels_match_the_shorter_model() -> None:
    x = conformance_data(200, 6, seed=4)
    short = create_quantizer({"kind": "rqkmeans", "levels": 2, "codebook_size": 8, "balanced": "none"})
    long = create_quantizer({"kind": "rqkmeans", "levels": 3, "codebook_size": 8, "balanced": "none"})
    short.fit(x)
    long.fit(x)
    torch.testing.assert_close(long.state_dict()["codebooks"][:2], short.state_dict()["codebooks"])
    assert torch.equal(long.encode(x)[:, :2], short.encode(x))


def test_balanced_last_level_spreads_codes_and_is_pointwise() -> None:
    x = conformance_data(800, 6, seed=5, clusters=2)  # two blobs: nearest assignment is very uneven
    plain = create_quantizer({"kind": "rqkmeans", "levels": 1, "codebook_size": 16, "balanced": "none"})
    fair = create_quantizer({"kind": "rqkmeans", "levels": 1, "codebook_size": 16, "balanced": "last"})
    plain.fit(x)
    fair.fit(x)
    plain_counts = torch.bincount(plain.encode(x)[:, 0], minlength=16)
    fair_counts = torch.bincount(fair.encode(x)[:, 0], minlength=16)
    assert int(fair_counts.max() - fair_counts.min()) < int(plain_counts.max() - plain_counts.min())
    assert int(fair_counts.min()) >= 800 // 16 // 2
    one_by_one = torch.cat([fair.encode(x[i : i + 1]) for i in range(20)])
    assert torch.equal(one_by_one, fair.encode(x[:20]))  # a code does not depend on the rest of the batch


def test_fit_is_seeded() -> None:
    x = conformance_data(150, 5, seed=6)
    runs = []
    for seed in (1, 1, 2):
        q = create_quantizer({"kind": "rqkmeans", "levels": 2, "codebook_size": 8, "seed": seed})
        q.fit(x)
        runs.append(q.state_dict()["codebooks"])
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
