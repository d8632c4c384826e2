"""Sinkhorn: marginals, stability at small ε, forbidden pairs, balanced assignment and prices."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ulmrec_index.quantizers import QuantizerError
from ulmrec_index.sinkhorn import balanced_assign, balanced_prices, sinkhorn


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 60), k=st.integers(1, 12), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-3, 1.0, 1e4]), eps=st.sampled_from([0.1, 0.5]))
def test_plan_is_finite_with_matching_marginals(n: int, k: int, seed: int, scale: float, eps: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    cost = torch.rand(n, k, generator=gen) * scale
    plan = sinkhorn(cost, epsilon=eps, n_iter=3000, tol=1e-7)
    assert bool(torch.isfinite(plan).all())
    assert float(plan.min()) >= 0
    torch.testing.assert_close(plan.sum(1), torch.full((n,), 1 / n), rtol=1e-3, atol=1e-7)
    torch.testing.assert_close(plan.sum(0), torch.full((k,), 1 / k), rtol=1e-3, atol=1e-7)


def test_tiny_epsilon_does_not_underflow() -> None:
    cost = torch.tensor([[0.0, 1000.0], [1000.0, 0.0], [0.0, 1000.0], [1000.0, 0.0]])
    plan = sinkhorn(cost, epsilon=1e-4, normalize=False)  # exp(-1e7) underflows; the log domain does not
    assert bool(torch.isfinite(plan).all())
    torch.testing.assert_close(plan, torch.tensor([[0.25, 0.0], [0.0, 0.25], [0.25, 0.0], [0.0, 0.25]]))


def test_hand_case_uniform_cost_gives_the_product_plan() -> None:
    plan = sinkhorn(torch.ones(3, 4), epsilon=0.1)
    torch.testing.assert_close(plan, torch.full((3, 4), 1 / 12))


def test_infinite_cost_forbids_a_pair() -> None:
    cost = torch.tensor([[0.0, math.inf], [1.0, 0.0]])
    plan = sinkhorn(cost, epsilon=0.1, n_iter=2000, tol=1e-8)
    assert float(plan[0, 1]) == 0.0
    torch.testing.assert_close(plan, torch.tensor([[0.5, 0.0], [0.0, 0.5]]))


@pytest.mark.parametrize(
    "cost",
    [torch.tensor([[0.0, float("nan")]]), torch.tensor([[-math.inf, 0.0]]), torch.zeros(0, 3),
     torch.zeros(3), torch.tensor([[math.inf, math.inf], [0.0, 1.0]])],
)
def test_bad_cost_is_refused(cost: torch.Tensor) -> None:
    with pytest.raises(QuantizerError):
        sinkhorn(cost)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(QuantizerError, match="epsilon"):
        sinkhorn(torch.ones(2, 2), epsilon=0)
    with pytest.raises(QuantizerError, match="n_iter"):
        sinkhorn(torch.ones(2, 2), n_iter=0)


def test_balanced_assign_spreads_a_crowd() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 4, generator=gen) * 0.1  # one tight blob ...
    codewords = torch.randn(16, 4, generator=gen)  # ... that nearest assignment sends to very few codes
    dist = torch.cdist(x, codewords) ** 2
    nearest = torch.bincount(dist.argmin(1), minlength=16)
    balanced = torch.bincount(balanced_assign(dist), minlength=16)
    assert int((nearest > 0).sum()) < 16
    assert int(balanced.min()) >= 2000 // 16 // 2
    assert int(balanced.max()) <= 2000 // 16 * 2


def test_prices_reproduce_the_balanced_assignment() -> None:
    gen = torch.Generator().manual_seed(1)
    dist = torch.rand(500, 10, generator=gen) ** 2
    prices = balanced_prices(dist)
    assert torch.equal((dist - prices).argmin(1), balanced_assign(dist))
    assert abs(float(prices.mean())) < 1e-5
