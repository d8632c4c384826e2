"""Entropic optimal transport (Sinkhorn–Knopp in the log domain) and balanced code assignment.

For a cost ``C`` ``(N, K)`` the plan ``P`` minimises ``<P, C> - ε H(P)`` subject to ``P 1 = 1/N`` (rows) and
``Pᵀ 1 = 1/K`` (columns). In log space, with potentials ``f`` ``(N,)`` and ``g`` ``(K,)`` (divided by ε)::

    f_i = log(1/N) - logsumexp_k(g_k - C_ik / ε)
    g_k = log(1/K) - logsumexp_i(f_i - C_ik / ε)
    P_ik = exp(f_i + g_k - C_ik / ε)

Working with potentials never exponentiates ``-C/ε`` directly, so a small ``ε`` cannot underflow to a zero
plan. ``+inf`` costs forbid a pair (used to mask taken codes); NaN and ``-inf`` are rejected.
"""

from __future__ import annotations

import math

import torch

from ulmrec_index.quantizers.errors import QuantizerError

__all__ = ["balanced_assign", "balanced_prices", "sinkhorn", "sinkhorn_potentials"]


def _check_cost(cost: torch.Tensor) -> torch.Tensor:
    if not isinstance(cost, torch.Tensor) or cost.ndim != 2:
        raise QuantizerError(f"cost must be a (N, K) tensor, got {getattr(cost, 'shape', type(cost))}")
    if cost.shape[0] == 0 or cost.shape[1] == 0:
        raise QuantizerError(f"cost is empty: shape {tuple(cost.shape)}")
    cost = cost.detach()
    if not cost.is_floating_point():
        cost = cost.to(torch.float32)
    if cost.dtype in (torch.float16, torch.bfloat16):
        cost = cost.to(torch.float32)
    if bool(torch.isnan(cost).any()) or bool((cost == -math.inf).any()):
        raise QuantizerError("cost has NaN or -inf entries")
    finite = torch.isfinite(cost)
    if not bool(finite.any(dim=1).all()) or not bool(finite.any(dim=0).all()):
        raise QuantizerError("every row and every column of cost needs at least one finite entry")
    return cost


def _normalise(cost: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Shift each row to min 0 and divide by the global scale (mean finite entry), so ε is scale-free."""
    finite = torch.isfinite(cost)
    row_min = torch.where(finite, cost, torch.full_like(cost, math.inf)).min(dim=1, keepdim=True).values
    shifted = cost - row_min
    scale = float(shifted[finite].mean())
    if not scale > 0:
        return torch.where(finite, torch.zeros_like(cost), cost), 1.0
    return shifted / scale, scale


def sinkhorn_potentials(
    cost: torch.Tensor,
    *,
    epsilon: float = 0.05,
    n_iter: int = 100,
    tol: float = 1e-4,
    normalize: bool = True,
    init_g: torch.Tensor | None = None,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run Sinkhorn and return ``(log_plan (N, K), f (N,), g (K,))`` (potentials divided by ε).

    ``init_g`` ``(K,)`` warm-starts the column potentials (e.g. from a previous, similar problem);
    ``validate=False`` skips the input checks (for trusted, finite costs in a hot loop). Stops
    early once the largest relative row-marginal error is below ``tol``; the last update is always the
    column one, so column sums are exact up to rounding.
    """
    if epsilon <= 0:
        raise QuantizerError(f"epsilon must be > 0, got {epsilon}")
    if n_iter < 1:
        raise QuantizerError(f"n_iter must be >= 1, got {n_iter}")
    if validate:
        cost = _check_cost(cost)
    if normalize:
        cost, _ = _normalise(cost)
    n, k = cost.shape
    log_k = -cost / epsilon  # (N, K), -inf where forbidden
    log_a = -math.log(n)
    log_b = -math.log(k)
    f = torch.zeros(n, dtype=cost.dtype)
    g = torch.zeros(k, dtype=cost.dtype) if init_g is None else init_g.detach().to(cost.dtype).clone()
    if g.shape != (k,):
        raise QuantizerError(f"init_g must have shape ({k},), got {tuple(g.shape)}")
    for it in range(n_iter):
        f = log_a - torch.logsumexp(log_k + g[None, :], dim=1)
        g = log_b - torch.logsumexp(log_k + f[:, None], dim=0)
        if it % 5 == 4 or it == n_iter - 1:  # checking costs one more pass: do it every 5 iterations
            row_log = torch.logsumexp(log_k + g[None, :], dim=1) + f  # log row sums after the column update
            if float((row_log - log_a).abs().max()) < tol:
                break
    log_plan = log_k + f[:, None] + g[None, :]
    return log_plan, f, g


def sinkhorn(
    cost: torch.Tensor,
    *,
    epsilon: float = 0.05,
    n_iter: int = 1000,
    tol: float = 1e-5,
    normalize: bool = True,
) -> torch.Tensor:
    """Entropic transport plan ``(N, K)`` with rows summing to ``1/N`` and columns to ``1/K``.

    ``cost`` ``(N, K)``: e.g. squared distances of N vectors to K codewords. With ``normalize`` the cost is
    shifted per row and divided by its mean, so ``epsilon`` is relative to a typical cost. The output is
    finite and non-negative; feasibility needs a finite entry in every row and column. Columns match to
    rounding; rows to ``tol`` once converged — a small ``epsilon`` on near-degenerate costs (few distinct
    rows) needs many iterations (e.g. ε = 0.05: thousands; ε = 0.1: tens).
    """
    log_plan, _, _ = sinkhorn_potentials(cost, epsilon=epsilon, n_iter=n_iter, tol=tol, normalize=normalize)
    return log_plan.exp()


def balanced_assign(
    distances: torch.Tensor,
    *,
    epsilon: float = 0.05,
    n_iter: int = 20,
    tol: float = 1e-3,
) -> torch.Tensor:
    """Codes ``(N,)`` int64: each row's argmax of the Sinkhorn plan, so code usage is near-uniform.

    Equivalent to ``argmin_k (C_ik - ε g_k)``: the nearest code after every code's cost is shifted by its
    dual price, which rises for over-used codes. Deterministic (ties go to the lowest index). The argmax
    settles long before the marginals are tight, hence the looser defaults (on 22k×256 random distances,
    5 and 50 iterations give the same per-code counts, 72..98 for a mean of 87 at ε = 0.05).
    """
    log_plan, _, _ = sinkhorn_potentials(distances, epsilon=epsilon, n_iter=n_iter, tol=tol)
    return log_plan.argmax(dim=1)


def balanced_prices(
    distances: torch.Tensor,
    *,
    epsilon: float = 0.05,
    n_iter: int = 20,
    tol: float = 1e-3,
    init_prices: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-code prices ``(K,)`` in distance units: ``argmin_k (d_ik − price_k)`` equals
    :func:`balanced_assign` on ``distances``.

    Storing them after fitting makes balanced encoding pointwise: a vector's code no longer depends on the
    other vectors of its batch, and a single new vector is priced like the training population.
    ``init_prices`` ``(K,)`` warm-starts Sinkhorn from earlier prices.
    """
    cost, scale = _normalise(_check_cost(distances))
    init_g = None if init_prices is None else init_prices / (epsilon * scale)
    _, _, g = sinkhorn_potentials(cost, epsilon=epsilon, n_iter=n_iter, tol=tol, init_g=init_g,
                                  normalize=False, validate=False)
    prices = g * (epsilon * scale)
    return (prices - prices.mean()).to(torch.float32)
