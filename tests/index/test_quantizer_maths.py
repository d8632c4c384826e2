"""encode / decode / code_distances of the built-in quantizers recomputed by hand, from their state.

The conformance suite checks properties (batch independence, error that falls with every level, argmin of
``code_distances``) that a quantizer can satisfy while computing the wrong thing consistently — distances off
by a constant factor in both fit and encode, prices with the wrong sign in both encode and code_distances, an
input standardised the wrong way at fit and encode alike. These tests recompute each code, distance and
standardisation with brute force in float64 from the fitted state (found by mutation testing,
``bench/mutation.py``; issue 27).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ulmrec_index.quantizers import create_quantizer
from ulmrec_index.quantizers.kmeans import nearest, squared_distances
from ulmrec_index.quantizers.residual import decode_sum, level_distances, residual_after
from ulmrec_index.quantizers.rqvae import RQVAE
from ulmrec_index.testing import conformance_data

torch.set_num_threads(1)


def brute_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``‖x_i − c_k‖²`` ``(N, K)`` in float64, by broadcasting."""
    return (x.double()[:, None, :] - c.double()[None, :, :]).pow(2).sum(-1)


def assert_greedy(codes: torch.Tensor, z: torch.Tensor, books: torch.Tensor, prices: torch.Tensor) -> None:
    """Each level's code is an argmin of ``‖r − C_l[k]‖² − prices[l, k]`` for the running residual ``r``
    (float ties allowed), the residual then losing the chosen codeword."""
    residual = z.double()
    for level in range(books.shape[0]):
        cost = brute_distances(residual, books[level]) - prices[level].double()
        chosen = cost.gather(1, codes[:, level : level + 1]).squeeze(1)
        slack = 1e-5 * (1.0 + cost.abs().amax(dim=1))
        bad = torch.nonzero(chosen > cost.min(dim=1).values + slack).flatten()
        assert not bad.numel(), f"level {level}: rows {bad.tolist()} are not given their cheapest code"
        residual = residual - books[level].double()[codes[:, level]]


def test_squared_distances_and_nearest_match_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(60, 7, generator=gen)
    c = torch.randn(9, 7, generator=gen)
    c[4] = x[5]                                                          # an exact zero distance
    got = squared_distances(x, c)
    want = brute_distances(x, c)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)
    assert float(got.min()) >= 0.0
    assert float(got[5, 4]) == pytest.approx(0.0, abs=1e-3)
    assert torch.equal(nearest(x, c), want.argmin(dim=1))


def test_residual_helpers_match_a_loop() -> None:
    gen = torch.Generator().manual_seed(1)
    books = torch.randn(3, 5, 4, generator=gen)
    x = torch.randn(20, 4, generator=gen)
    codes = torch.randint(5, (20, 3), generator=gen)
    for p in range(4):
        picked = [books[level][codes[:, level]] for level in range(p)]
        total = torch.stack(picked).sum(0) if picked else torch.zeros(20, 4)
        torch.testing.assert_close(decode_sum(books, codes[:, :p]), total)
        torch.testing.assert_close(residual_after(x, books, codes[:, :p]), x - total)
    for level in range(3):  # a prefix longer than `level` is cut to its first `level` codes
        before = sum((books[j][codes[:, j]] for j in range(level)), torch.zeros(20, 4))
        want = brute_distances(x - before, books[level])
        torch.testing.assert_close(level_distances(x, books, level, codes).double(), want, rtol=1e-4,
                                   atol=1e-4)


@pytest.mark.parametrize("balanced", ["none", "last", "all"])
def test_rqkmeans_encode_and_code_distances_by_hand(balanced: str) -> None:
    x = conformance_data(150, 6, seed=3)
    q = create_quantizer({"kind": "rqkmeans", "levels": 3, "codebook_size": 8, "balanced": balanced})
    q.fit(x)
    state = q.state_dict()
    books, prices = state["codebooks"], state["prices"]
    priced = [balanced == "all" or (balanced == "last" and level == 2) for level in range(3)]
    for level in range(3):
        assert bool(prices[level].abs().max() > 0) == priced[level]      # prices only where balanced
    codes = q.encode(x)
    assert_greedy(codes, x, books, prices)
    for level in range(3):
        r = x.double() - sum((books[j].double()[codes[:, j]] for j in range(level)),
                             torch.zeros(150, 6, dtype=torch.float64))
        want = brute_distances(r, books[level])
        if priced[level]:
            want = want + (prices[level].max() - prices[level]).double()
        got = q.code_distances(x, level, codes)
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-3)
    other = torch.randint(8, (150, 3), generator=torch.Generator().manual_seed(9))   # any prefix
    r = x.double() - books[0].double()[other[:, 0]] - books[1].double()[other[:, 1]]
    want = brute_distances(r, books[2]) + (prices[2].max() - prices[2]).double()
    torch.testing.assert_close(q.code_distances(x, 2, other).double(), want, rtol=1e-4, atol=1e-3)


def _rqvae(**over: Any) -> tuple[RQVAE, torch.Tensor]:
    x = conformance_data(200, 8, seed=5)
    q = create_quantizer({"kind": "rqvae", "levels": 3, "codebook_size": 8, "hidden_dims": [16],
                          "latent_dim": 4, "epochs": 2, "batch_size": 64, "min_steps": 30, **over})
    assert isinstance(q, RQVAE)
    torch.manual_seed(0)
    q.fit(x)
    return q, x


@pytest.mark.parametrize("balanced", [True, False])
def test_rqvae_encode_and_code_distances_by_hand(balanced: bool) -> None:
    q, x = _rqvae(balanced_last_level=balanced)
    assert q.encoder is not None
    # the input is standardised on the training set: its mean, and the RMS of the centred data
    torch.testing.assert_close(q.x_mean, x.mean(0))
    torch.testing.assert_close(q.x_scale, (x - x.mean(0)).pow(2).mean().sqrt())
    with torch.no_grad():
        z = q.encoder((x - x.mean(0)) / (x - x.mean(0)).pow(2).mean().sqrt())
    torch.testing.assert_close(q.latent(x).detach(), z)
    books = q.state_dict()["codebooks"]
    prices = torch.zeros(3, 8)
    if balanced:
        prices[2] = q.prices
        assert float(q.prices.abs().max()) > 0
    codes = q.encode(x)
    assert_greedy(codes, z, books, prices)
    for level in range(3):
        r = z.double() - sum((books[j].double()[codes[:, j]] for j in range(level)),
                             torch.zeros(200, 4, dtype=torch.float64))
        want = brute_distances(r, books[level])
        if balanced and level == 2:
            want = want + (q.prices.max() - q.prices).double()
        torch.testing.assert_close(q.code_distances(x, level, codes).double(), want, rtol=1e-4, atol=1e-4)
    # any prefix, not only the encoded one: the residual is taken after the codes given
    other = torch.randint(8, (200, 3), generator=torch.Generator().manual_seed(9))
    r = z.double() - books[0].double()[other[:, 0]] - books[1].double()[other[:, 1]]
    want = brute_distances(r, books[2])
    if balanced:
        want = want + (q.prices.max() - q.prices).double()
    torch.testing.assert_close(q.code_distances(x, 2, other).double(), want, rtol=1e-4, atol=1e-4)


def test_rqvae_training_assignment_balances_the_batch_and_learns_the_prices() -> None:
    """In training mode the balanced last level is assigned by Sinkhorn on each batch and its prices follow
    (an EMA of the batch prices, kept centred): fed a skewed population batch by batch, the priced argmin
    that ``encode`` uses ends up spreading it over the codes, and agrees with the batch assignment. A joint
    trainer that never calls ``calibrate()`` encodes with these prices."""
    q, _ = _rqvae()
    last = 2
    books = q.codebooks.detach()
    gen = torch.Generator().manual_seed(4)
    # residuals crowded around two of the eight last-level codewords
    crowd = books[last][torch.randint(2, (256,), generator=gen)]
    residual = crowd + 0.05 * torch.randn(256, 4, generator=gen)
    with torch.no_grad():
        q.prices.zero_()
    skewed = torch.bincount(q._assign(residual, last, batch_balance=False), minlength=8)
    assert int(skewed.max()) >= 64                                       # twice the fair share of 32
    for _ in range(300):
        q._assign(residual[torch.randperm(256, generator=gen)[:64]], last, batch_balance=True)
    spread = torch.bincount(q._assign(residual, last, batch_balance=False), minlength=8)
    assert int(spread.max()) <= 48
    assert int(spread.min()) >= 16
    assert abs(float(q.prices.mean())) < 1e-6
    batch = residual[:64]
    agree = (q._assign(batch, last, batch_balance=True) == q._assign(batch, last, batch_balance=False))
    assert float(agree.float().mean()) >= 0.75
