"""rqvae: the shared conformance suite plus training behaviour (joint forward, dead codes, balance, seeds)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from ulmrec_index.quantizers import Quantizer, QuantizerError, TrainableQuantizer, create_quantizer
from ulmrec_index.quantizers.rqvae import RQVAE, RQVAEConfig
from ulmrec_index.testing import QuantizerConformance, conformance_data

SMALL = {"kind": "rqvae", "levels": 2, "codebook_size": 8, "hidden_dims": [32], "latent_dim": 4,
         "epochs": 15, "batch_size": 64, "min_steps": 150, "warmup_steps": 50}


def decoded_codeword_sum(quantizer: Quantizer, codes: torch.Tensor) -> torch.Tensor:
    """rqvae's decode computed from its parameters: the decoder applied to ``Σ_l e_l[codes_l]``, mapped back
    to the input scale (``x_scale``, ``x_mean``)."""
    assert isinstance(quantizer, RQVAE)
    assert quantizer.decoder is not None
    books = quantizer.state_dict()["codebooks"]
    latent = torch.stack([books[level][codes[:, level]] for level in range(codes.shape[1])]).sum(0)
    with torch.no_grad():
        return quantizer.decoder(latent) * quantizer.x_scale + quantizer.x_mean


class TestRQVAEConformance(QuantizerConformance):
    config: ClassVar[dict[str, Any]] = SMALL
    error_rtol = 0.05  # trained by gradient: an extra level must help, within a small tolerance

    def expected_decode(self, quantizer: Quantizer, codes: torch.Tensor) -> torch.Tensor:
        return decoded_codeword_sum(quantizer, codes)


class TestRQVAEEMAConformance(QuantizerConformance):
    config: ClassVar[dict[str, Any]] = {**SMALL, "codebook_update": "ema", "balanced_last_level": False}
    error_rtol = 0.05

    def expected_decode(self, quantizer: Quantizer, codes: torch.Tensor) -> torch.Tensor:
        return decoded_codeword_sum(quantizer, codes)


def _fit(**over: object) -> tuple[RQVAE, torch.Tensor]:
    torch.set_num_threads(1)
    x = conformance_data(256, 8, seed=1)
    q = create_quantizer({**SMALL, **over})
    assert isinstance(q, RQVAE)
    q.fit(x)
    return q, x


def test_defaults_match_the_paper_setting() -> None:
    cfg = RQVAEConfig()
    assert (cfg.levels, cfg.codebook_size, cfg.beta) == (4, 256, 0.25)
    assert cfg.kmeans_init
    assert cfg.dead_code_reset
    assert cfg.balanced_last_level


def test_is_trainable_and_forward_trains_jointly() -> None:
    q, x = _fit()
    assert isinstance(q, TrainableQuantizer)
    front = torch.nn.Linear(8, 8)  # a module trained jointly in front of the quantizer
    opt = torch.optim.Adam([*front.parameters(), *q.parameters()], lr=1e-2)
    q.train()
    before = front.weight.detach().clone()
    out = q(front(x[:64]))
    assert out.reconstruction.shape == (64, 8)
    assert out.codes.shape == (64, 2)
    assert out.loss.ndim == 0
    opt.zero_grad()
    out.loss.backward()
    assert front.weight.grad is not None
    assert float(front.weight.grad.abs().sum()) > 0  # gradients reach the front module (straight-through)
    opt.step()
    assert not torch.equal(front.weight, before)


def test_fit_is_deterministic() -> None:
    a, _ = _fit()
    b, _ = _fit()
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    c, _x = _fit(seed=5)
    assert not torch.equal(a.state_dict()["codebooks"], c.state_dict()["codebooks"])


def test_training_lowers_the_loss_and_uses_every_code() -> None:
    torch.set_num_threads(1)
    x = conformance_data(256, 8, seed=1)
    q = create_quantizer(SMALL)
    report = q.fit(x)
    assert report.losses[-1] < 0.8 * report.losses[0]
    codes = q.encode(x)
    for level in range(2):  # k-means init + dead-code reset: every code is used on the training data
        assert int(torch.unique(codes[:, level]).numel()) == 8


def test_dead_codes_are_reseeded() -> None:
    q, x = _fit(epochs=1)
    with torch.no_grad():
        q.codebooks[0, 3] = 1e6  # a codeword nobody can pick
    q.usage.zero_()
    q.usage[0] += 1
    q.usage[0, 3] = 0
    q.usage[1] += 1
    assert q.reset_dead_codes(x) == 1
    assert 3 in q.encode(x)[:, 0].tolist()


def test_balanced_last_level_is_more_even() -> None:
    # one anisotropic blob: prices even out code use wherever latents differ (they cannot split a tight
    # cluster that the encoder maps onto one point, so clustered data would not show it)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(512, 8, generator=gen) * torch.linspace(0.2, 3.0, 8)
    counts = {}
    for balanced in (False, True):
        q = create_quantizer({**SMALL, "levels": 1, "codebook_size": 16, "balanced_last_level": balanced})
        q.fit(x)
        counts[balanced] = torch.bincount(q.encode(x)[:, 0], minlength=16)
    assert float(counts[True].float().std()) < float(counts[False].float().std())


def test_forward_before_fit_initialises_from_the_first_batch() -> None:
    q = create_quantizer(SMALL)
    assert isinstance(q, RQVAE)
    q.train()
    out = q(conformance_data(64, 8, seed=2))
    assert bool(q.initialized)
    assert torch.isfinite(out.loss)


def test_load_state_dict_rejects_foreign_state() -> None:
    q = create_quantizer(SMALL)
    with pytest.raises(QuantizerError, match="encoder"):
        q.load_state_dict({"codebooks": torch.zeros(2, 8, 4)})
