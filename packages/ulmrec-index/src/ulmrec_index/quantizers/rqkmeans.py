"""``rqkmeans``: residual k-means; level l clusters the residuals left by levels ``0..l-1``. No training.

A balanced level stores per-code prices (:func:`ulmrec_index.sinkhorn.balanced_prices`, fitted on the training
residuals): ``encode`` picks ``argmin_k (‖r − c_k‖² − price_k)``, which reproduces the Sinkhorn-balanced
assignment of the training set while keeping each vector's code independent of its batch.

Fast and seeded: level l's k-means draws from a generator seeded with ``(seed, l)``, so an (L+1)-level model
has exactly the first L codebooks of the L-level one.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ulmrec_index.quantizers._checks import check_codes, check_level, check_prefix, check_vectors
from ulmrec_index.quantizers.base import FitReport, QuantizerConfig, TensorLike
from ulmrec_index.quantizers.errors import NotFittedError, QuantizerError
from ulmrec_index.quantizers.kmeans import kmeans, squared_distances
from ulmrec_index.quantizers.registry import QuantizerSpec, register_quantizer
from ulmrec_index.quantizers.residual import decode_sum, level_distances
from ulmrec_index.sinkhorn import balanced_prices

Balance = Literal["none", "last", "all"]


class RQKMeansConfig(QuantizerConfig):
    """Residual k-means (no gradient training)."""

    kind: Literal["rqkmeans"] = Field(default="rqkmeans", description="Registry key.")
    n_iter: int = Field(default=10, ge=0, le=1000,
                        description="Lloyd iterations per level at most (0 = init only).")
    init: Literal["kmeans++", "random"] = Field(
        default="kmeans++", description="Centroid init: k-means++ D² sampling or uniform sampling of points.")
    balanced: Balance = Field(
        default="last",
        description="Levels whose assignment (during k-means and in encode) is Sinkhorn-balanced: none, the "
                    "last level only (near-uniform last-level usage, fewer collisions), or all levels.")
    sinkhorn_epsilon: float = Field(default=0.05, gt=0, description="Entropic regularisation of Sinkhorn.")


def _level_seed(seed: int, level: int) -> int:
    return (seed * 1_000_003 + level * 7919 + 17) % (2**63 - 1)


class RQKMeans:
    """Residual k-means quantizer: codebooks ``(L, K, D)``; ``encode`` is greedy residual assignment."""

    def __init__(self, *, config: RQKMeansConfig) -> None:
        self.config = config
        self.codebooks: torch.Tensor | None = None  # (L, K, D)
        self.prices: torch.Tensor | None = None  # (L, K), zero on unbalanced levels

    @classmethod
    def from_config(cls, config: RQKMeansConfig) -> RQKMeans:
        return cls(config=config)

    def _balanced(self, level: int) -> bool:
        mode = self.config.balanced
        return mode == "all" or (mode == "last" and level == self.config.levels - 1)

    def _fitted(self) -> torch.Tensor:
        if self.codebooks is None:
            raise NotFittedError("rqkmeans quantizer is not fitted: call fit(x) or load_state_dict() first")
        return self.codebooks

    def fit(self, x: TensorLike) -> FitReport:
        """Fit every level on ``x`` ``(N, D)``; reports the mean squared residual after each level."""
        x = check_vectors(x)
        cfg = self.config
        books = torch.empty(cfg.levels, cfg.codebook_size, x.shape[1])
        prices = torch.zeros(cfg.levels, cfg.codebook_size)
        residual = x.clone()
        losses: list[float] = []
        for level in range(cfg.levels):
            gen = torch.Generator().manual_seed(_level_seed(cfg.seed, level))
            cent, codes = kmeans(residual, cfg.codebook_size, n_iter=cfg.n_iter, init=cfg.init,
                                 balanced=self._balanced(level), epsilon=cfg.sinkhorn_epsilon, generator=gen)
            books[level] = cent
            if self._balanced(level) and x.shape[0] > 1:
                dist = squared_distances(residual, cent)
                prices[level] = balanced_prices(dist, epsilon=cfg.sinkhorn_epsilon)
                codes = (dist - prices[level]).argmin(dim=1)
            residual = residual - cent[codes]
            losses.append(float(residual.pow(2).sum(1).mean()))
        self.codebooks, self.prices = books, prices
        return FitReport(losses=losses, stats={"mse": losses[-1]})

    def encode(self, x: TensorLike) -> torch.Tensor:
        """Codes ``(N, L)``: nearest codeword per level of the running residual (balanced if configured)."""
        books = self._fitted()
        x = check_vectors(x, dim=books.shape[2])
        residual = x.clone()
        codes = torch.empty(x.shape[0], self.config.levels, dtype=torch.int64)
        for level in range(self.config.levels):
            dist = squared_distances(residual, books[level])
            if self.prices is not None:
                dist -= self.prices[level]
            codes[:, level] = dist.argmin(dim=1)
            residual -= books[level][codes[:, level]]
        return codes

    def decode(self, codes: TensorLike) -> torch.Tensor:
        """Reconstruction ``(N, D)`` = ``Σ_l C_l[codes_l]``; a code prefix ``(N, l<L)`` decodes coarser."""
        books = self._fitted()
        codes = check_codes(codes, levels=self.config.levels, codebook_size=self.config.codebook_size,
                            allow_prefix=True)
        return decode_sum(books, codes)

    def code_distances(self, x: TensorLike, level: int, prefix: TensorLike) -> torch.Tensor:
        """Assignment costs ``(N, K)`` of the residual after ``prefix`` ``(N, >=level)``: squared distances
        to the codewords plus, on a balanced level, each code's surcharge ``max(price) − price_k`` (so their
        argmin is what :meth:`encode` picks)."""
        books = self._fitted()
        check_level(level, self.config.levels)
        x = check_vectors(x, dim=books.shape[2])
        prefix = check_prefix(prefix, n=x.shape[0], level=level, codebook_size=self.config.codebook_size)
        dist = level_distances(x, books, level, prefix)
        if self.prices is not None and self._balanced(level):
            price = self.prices[level]
            dist += price.max() - price
        return dist

    def state_dict(self) -> dict[str, torch.Tensor]:
        books = self._fitted()
        prices = self.prices if self.prices is not None else torch.zeros(books.shape[:2])
        return {"codebooks": books.clone(), "prices": prices.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        books = state.get("codebooks")
        cfg = self.config
        if books is None or books.ndim != 3 or tuple(books.shape[:2]) != (cfg.levels, cfg.codebook_size):
            got = None if books is None else tuple(books.shape)
            raise QuantizerError(f"rqkmeans state needs 'codebooks' of shape ({cfg.levels}, "
                                 f"{cfg.codebook_size}, D), got {got}")
        prices = state.get("prices")
        if prices is None:
            prices = torch.zeros(cfg.levels, cfg.codebook_size)
        if tuple(prices.shape) != (cfg.levels, cfg.codebook_size):
            raise QuantizerError(f"rqkmeans state 'prices' must have shape ({cfg.levels}, "
                                 f"{cfg.codebook_size}), got {tuple(prices.shape)}")
        self.codebooks = books.detach().to(torch.float32).clone()
        self.prices = prices.detach().to(torch.float32).clone()


SPEC = QuantizerSpec("rqkmeans", RQKMeansConfig, RQKMeans.from_config)  # also the entry-point value
register_quantizer(SPEC.kind, SPEC.config_class, SPEC.factory)
