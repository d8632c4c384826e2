"""Seeded k-means in torch: k-means++ or random init, Lloyd iterations, optional Sinkhorn-balanced assignment.

Shared by ``rqkmeans`` (every level) and ``rqvae`` (codebook initialisation). Shapes: ``x`` ``(N, D)``,
centroids ``(K, D)``, assignment ``(N,)``.

Fewer vectors than codes (``N < K``): the init samples the missing centroids *with replacement* from the data
and adds a small seeded jitter, so a codebook always has K distinct rows; only up to N of them can be used.
"""

from __future__ import annotations

from typing import Literal

import torch

from ulmrec_index.sinkhorn import balanced_assign

InitMethod = Literal["kmeans++", "random"]


def squared_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``‖x_i − c_k‖²`` ``(N, K)`` via ``‖x‖² − 2 x·c + ‖c‖²``, clamped at 0."""
    d = torch.addmm((c * c).sum(1)[None, :], x, c.T, alpha=-2.0)
    d += (x * x).sum(1, keepdim=True)
    return d.clamp_min_(0.0)


def nearest(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``argmin_k ‖x_i − c_k‖²`` ``(N,)``; skips the per-row constant ``‖x‖²``."""
    return torch.addmm((c * c).sum(1)[None, :], x, c.T, alpha=-2.0).argmin(dim=1)


def _jitter_scale(x: torch.Tensor) -> float:
    std = float(x.std()) if x.shape[0] > 1 else 0.0
    return 1e-3 * (std if std > 0 else max(float(x.abs().max()), 1.0))


def init_centroids(x: torch.Tensor, k: int, *, method: InitMethod,
                   generator: torch.Generator) -> torch.Tensor:
    """``k`` initial centroids ``(k, D)`` chosen from ``x`` (k-means++ D² sampling, or uniform)."""
    n = x.shape[0]
    if method == "random" or n <= k:
        if n >= k:
            idx = torch.randperm(n, generator=generator)[:k]
            return x[idx].clone()
        extra = torch.randint(n, (k - n,), generator=generator)
        idx = torch.cat([torch.randperm(n, generator=generator), extra])
        cent = x[idx].clone()
        noise = torch.randn(k - n, x.shape[1], generator=generator) * _jitter_scale(x)
        cent[n:] += noise
        return cent
    cent = torch.empty(k, x.shape[1], dtype=x.dtype)
    x_sq = (x * x).sum(1)  # (N,)
    first = int(torch.randint(n, (1,), generator=generator))
    cent[0] = x[first]
    closest = (x_sq - 2.0 * (x @ x[first]) + x_sq[first]).clamp_min_(0.0)  # (N,) D² to the nearest centroid
    for j in range(1, k):
        total = float(closest.sum())
        if total <= 0:  # every point already coincides with a centroid: fill the rest uniformly + jitter
            idx = torch.randint(n, (k - j,), generator=generator)
            cent[j:] = x[idx] + torch.randn(k - j, x.shape[1], generator=generator) * _jitter_scale(x)
            break
        pick = int(torch.multinomial(closest, 1, generator=generator))
        cent[j] = x[pick]
        torch.minimum(closest, (x_sq - 2.0 * (x @ x[pick]) + x_sq[pick]).clamp_min_(0.0), out=closest)
    return cent


def assign(x: torch.Tensor, centroids: torch.Tensor, *, balanced: bool = False,
           epsilon: float = 0.05) -> torch.Tensor:
    """Nearest centroid per row ``(N,)``, or the Sinkhorn-balanced assignment when ``balanced``."""
    if balanced and x.shape[0] > 1:
        return balanced_assign(squared_distances(x, centroids), epsilon=epsilon)
    return nearest(x, centroids)


def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    n_iter: int = 20,
    init: InitMethod = "kmeans++",
    balanced: bool = False,
    balanced_iter: int = 2,
    epsilon: float = 0.05,
    tol: float = 1e-4,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means: returns ``(centroids (k, D), assignment (N,))``.

    Each iteration assigns every point to its nearest centroid and moves each centroid to the mean of its
    points; an empty cluster is re-seeded at the point farthest from its centroid. It stops after ``n_iter``
    iterations or once fewer than ``tol · N`` points change cluster. With ``balanced``, ``balanced_iter`` more
    iterations use the Sinkhorn-balanced assignment (it is ~20× dearer than argmin). The returned assignment
    is against the final centroids, so with ``balanced=False`` the error ``Σ‖x − c(x)‖²`` is at most
    ``Σ‖x‖²``.
    """
    x = x.to(torch.float32)
    n = x.shape[0]
    cent = init_centroids(x, k, method=init, generator=generator)
    prev: torch.Tensor | None = None
    for _ in range(n_iter):
        codes = assign(x, cent)
        cent = _update(x, cent, codes, k)
        if prev is not None and int((codes != prev).sum()) < tol * n:
            break
        prev = codes
    if balanced:
        for _ in range(balanced_iter):
            cent = _update(x, cent, assign(x, cent, balanced=True, epsilon=epsilon), k)
    return cent, assign(x, cent, balanced=balanced, epsilon=epsilon)


def cluster_sums(x: torch.Tensor, codes: torch.Tensor, k: int) -> torch.Tensor:
    """``Σ_{i: codes_i = k} x_i`` ``(K, D)`` as a one-hot matmul (faster than ``index_add_`` on CPU)."""
    one_hot = torch.zeros(x.shape[0], k, dtype=x.dtype).scatter_(1, codes[:, None], 1.0)
    return one_hot.T @ x


def _update(x: torch.Tensor, cent: torch.Tensor, codes: torch.Tensor, k: int) -> torch.Tensor:
    """Centroids moved to their clusters' means; empty clusters re-seeded at the worst-fitted points."""
    sums = cluster_sums(x, codes, k)
    counts = torch.bincount(codes, minlength=k)
    used = counts > 0
    new = cent.clone()
    new[used] = sums[used] / counts[used, None].to(x.dtype)
    empty = torch.nonzero(~used).flatten()
    if empty.numel() and x.shape[0] > k:
        err = (x - new[codes]).pow(2).sum(1)
        far = torch.argsort(err, descending=True, stable=True)[: empty.numel()]
        new[empty] = x[far]
    return new
