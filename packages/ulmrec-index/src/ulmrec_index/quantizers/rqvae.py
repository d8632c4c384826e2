"""``rqvae`` (the default): residual-quantized variational autoencoder.

``x (N, D) → standardise → MLP encoder → z (N, d) → L residual levels × K codewords → ẑ = Σ_l e_l → decoder``.

Level ``l`` quantizes the residual ``r_l = z − Σ_{j<l} e_j`` to its nearest codeword (the last level
optionally Sinkhorn-balanced). Loss (VQ-VAE; the straight-through ``z + sg(ẑ − z)`` feeds the decoder)::

    L = ‖x̂ − x‖² / D  +  Σ_l ‖sg(r_l) − e_l‖² / d  +  β Σ_l ‖r_l − sg(e_l)‖² / d

(with ``codebook_update="ema"`` the codebook term is replaced by exponential moving averages of the assigned
residuals). Codebooks are k-means initialised level by level on the residuals of all training data (or of the
first batch when ``forward`` runs before ``fit``); codes unused over an epoch are re-seeded at the residuals
with the largest error. The balanced last level stores per-code prices (as in ``rqkmeans``), so ``encode`` is
pointwise: ``argmin_k (‖r − e_k‖² − price_k)``.

``fit(x)`` trains it alone (AdamW). For joint training with a module in front of it, call ``fit`` first
(or let the first training ``forward`` initialise the codebooks) and optimise ``forward(x).loss``; in
training mode ``forward`` also counts code usage and re-seeds dead codes once per ``fit``-sized window of
samples, and keeps the last level's prices up to date (EMA of per-batch, warm-started Sinkhorn prices).
:meth:`calibrate` recomputes the prices exactly on a population.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F

from ulmrec_index.quantizers._checks import check_codes, check_level, check_prefix, check_vectors
from ulmrec_index.quantizers.base import FitReport, QuantizerConfig, QuantizerOutput, TensorLike
from ulmrec_index.quantizers.errors import NotFittedError, QuantizerError
from ulmrec_index.quantizers.kmeans import cluster_sums, kmeans, nearest, squared_distances
from ulmrec_index.quantizers.registry import QuantizerSpec, register_quantizer
from ulmrec_index.quantizers.residual import decode_sum
from ulmrec_index.sinkhorn import balanced_prices, sinkhorn_potentials

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


class RQVAEConfig(QuantizerConfig):
    """RQ-VAE: MLP autoencoder with a residual vector quantizer in its latent space."""

    kind: Literal["rqvae"] = Field(default="rqvae", description="Registry key.")
    input_dim: int | None = Field(default=None, ge=1,
                                  description="Input size D; None: taken from the data at fit time.")
    hidden_dims: list[int] = Field(default_factory=lambda: [256, 128],
                                   description="Encoder hidden sizes (the decoder mirrors them).")
    latent_dim: int = Field(default=32, ge=1, description="Latent (codeword) size d.")
    activation: Literal["relu", "silu", "gelu"] = Field(default="silu", description="MLP activation.")
    standardize: bool = Field(default=True,
                              description="Centre x on its training mean and scale it to unit RMS first.")
    epochs: int = Field(default=5, ge=0, description="Training epochs of fit() (at least; see min_steps).")
    batch_size: int = Field(default=2048, ge=2, description="Vectors per optimisation step (at most).")
    min_steps: int = Field(
        default=400, ge=0,
        description="fit() takes at least this many optimisation steps: with few vectors the batch shrinks "
                    "to N/8 (not below 64) and the epochs grow until min_steps is reached, so a small N "
                    "trains as long as a large one (0: exactly `epochs` epochs of `batch_size`).")
    warmup_steps: int = Field(
        default=0, ge=0,
        description="Plain autoencoder steps (no quantization) before the codebooks are k-means initialised "
                    "on the latents (off by default: it lowered first-level semantic purity in tests).")
    lr: float = Field(default=3e-3, gt=0, description="AdamW learning rate (cosine-decayed to 10% in fit).")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay (not on codebooks).")
    codebook_lr_scale: float = Field(default=10.0, gt=0,
                                     description="Codebook learning rate = lr × this (loss updates).")
    beta: float = Field(default=0.25, ge=0, description="Commitment loss weight β.")
    codebook_update: Literal["loss", "ema"] = Field(
        default="loss", description="Codebooks learnt by the codebook loss, or as EMAs of their residuals.")
    ema_decay: float = Field(default=0.95, gt=0, lt=1, description="EMA decay (codebook_update='ema').")
    kmeans_init: bool = Field(default=True, description="k-means-initialise every level's codebook.")
    kmeans_iters: int = Field(default=10, ge=0, description="Lloyd iterations of the k-means init.")
    dead_code_reset: bool = Field(
        default=True, description="Re-seed codes unused over an epoch at high-error residuals.")
    balanced_last_level: bool = Field(
        default=True, description="Sinkhorn-balanced assignment on the last level (training and encode).")
    sinkhorn_epsilon: float = Field(default=0.05, gt=0, description="Entropic regularisation of Sinkhorn.")
    sinkhorn_iters: int = Field(default=3, ge=1, description="Sinkhorn iterations per training batch "
                                "(warm-started from the running prices).")
    price_momentum: float = Field(default=0.9, ge=0, lt=1,
                                  description="EMA momentum of the last-level prices during training.")

    @field_validator("hidden_dims")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(h < 1 for h in value):
            raise ValueError(f"hidden_dims must be positive, got {value}")
        return value


def _mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """The ``rqvae`` quantizer (a :class:`~ulmrec_index.quantizers.base.TrainableQuantizer`)."""

    x_mean: torch.Tensor  # (D,) training mean (zeros without standardize)
    x_scale: torch.Tensor  # () training RMS
    prices: torch.Tensor  # (K,) last-level balancing prices
    initialized: torch.Tensor  # () bool
    ema_count: torch.Tensor  # (L, K)
    ema_sum: torch.Tensor  # (L, K, d)
    usage: torch.Tensor  # (L, K) code counts since the last dead-code reset (not saved)

    def __init__(self, *, config: RQVAEConfig) -> None:
        super().__init__()
        self._config = config
        self.encoder: nn.Sequential | None = None
        self.decoder: nn.Sequential | None = None
        levels, k, d = config.levels, config.codebook_size, config.latent_dim
        self.codebooks = nn.Parameter(torch.zeros(levels, k, d))  # (L, K, d)
        self.register_buffer("x_mean", torch.zeros(0))  # (D,)
        self.register_buffer("x_scale", torch.ones(()))
        self.register_buffer("prices", torch.zeros(k))  # (K,) last-level balancing prices
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("ema_count", torch.zeros(levels, k))
        self.register_buffer("ema_sum", torch.zeros(levels, k, d))
        self.register_buffer("usage", torch.zeros(levels, k), persistent=False)
        self._seen = 0  # samples counted in `usage` since the last dead-code reset
        self._window = 0  # dead-code window of training forwards outside fit (= N of the last fit)
        self._in_fit = False
        self._gen = torch.Generator().manual_seed(config.seed + 1)
        if config.codebook_update == "ema":
            self.codebooks.requires_grad_(False)
        if config.input_dim is not None:
            self.build(config.input_dim)

    @property
    def config(self) -> RQVAEConfig:
        return self._config

    @classmethod
    def from_config(cls, config: RQVAEConfig) -> RQVAE:
        return cls(config=config)

    # ------------------------------------------------------------------ construction
    def build(self, input_dim: int) -> None:
        """Create the encoder/decoder for inputs of size ``input_dim`` (seeded by ``config.seed``)."""
        cfg = self.config
        act = _ACTIVATIONS[cfg.activation]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.encoder = _mlp([input_dim, *cfg.hidden_dims, cfg.latent_dim], act)
            self.decoder = _mlp([cfg.latent_dim, *reversed(cfg.hidden_dims), input_dim], act)
        self.x_mean = torch.zeros(input_dim)
        self.x_scale = torch.ones(())

    @property
    def input_dim(self) -> int | None:
        return None if self.encoder is None else int(self.x_mean.shape[0])

    def _nets(self) -> tuple[nn.Sequential, nn.Sequential]:
        if self.encoder is None or self.decoder is None:
            raise NotFittedError("rqvae quantizer has no networks yet: call fit(x), build(input_dim) or "
                                 "load_state_dict() first")
        return self.encoder, self.decoder

    def _require_fitted(self) -> tuple[nn.Sequential, nn.Sequential]:
        nets = self._nets()
        if not bool(self.initialized):
            raise NotFittedError("rqvae quantizer is not fitted: call fit(x) or load_state_dict() first")
        return nets

    # ------------------------------------------------------------------ core maps
    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_scale

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """``z`` ``(N, d)`` of raw inputs ``x`` ``(N, D)`` (differentiable)."""
        encoder, _ = self._nets()
        return encoder(self._standardize(x))

    def _balanced(self, level: int) -> bool:
        return self.config.balanced_last_level and level == self.config.levels - 1

    def _assign(self, residual: torch.Tensor, level: int, *, batch_balance: bool) -> torch.Tensor:
        """Codes ``(B,)`` of ``residual`` ``(B, d)`` at ``level``; balanced levels use Sinkhorn (training) or
        the stored prices (eval)."""
        if not self._balanced(level):
            return nearest(residual, self.codebooks[level].detach())
        dist = squared_distances(residual, self.codebooks[level].detach())
        if batch_balance and residual.shape[0] > 1:
            cfg = self.config
            unit = cfg.sinkhorn_epsilon * float((dist - dist.min(dim=1, keepdim=True).values).mean())
            unit = unit if unit > 0 else 1.0
            log_plan, _, g = sinkhorn_potentials(dist, epsilon=cfg.sinkhorn_epsilon,
                                                 n_iter=cfg.sinkhorn_iters, tol=1e-3,
                                                 init_g=self.prices / unit, validate=False)
            batch_prices = g * unit
            batch_prices -= batch_prices.mean()
            with torch.no_grad():
                self.prices.mul_(cfg.price_momentum).add_((1 - cfg.price_momentum) * batch_prices)
            return log_plan.argmax(dim=1)
        return (dist - self.prices).argmin(dim=1)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        """Differentiable pass on raw ``x`` ``(B, D)``: ``QuantizerOutput(reconstruction (B, D), codes (B, L),
        loss ())``. In training mode it also initialises the codebooks (first call), tracks code usage,
        updates EMA codebooks/prices and re-seeds dead codes."""
        cfg = self.config
        if self.encoder is None:
            self.build(x.shape[1])
        _, decoder = self._nets()
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise QuantizerError(f"x must have shape (B, {self.input_dim}), got {tuple(x.shape)}")
        if self.training and not bool(self.initialized):
            self._init_codebooks(x.detach(), fit_standardizer=True)
        z = self.latent(x)  # (B, d)
        residual = z
        z_hat = torch.zeros_like(z)
        codes = torch.empty(x.shape[0], cfg.levels, dtype=torch.int64)
        vq_loss = z.new_zeros(())
        commit = z.new_zeros(())
        for level in range(cfg.levels):
            code = self._assign(residual.detach(), level, batch_balance=self.training)
            codes[:, level] = code
            e = self.codebooks[level][code]  # (B, d)
            if self.training:
                self._track(level, code, residual.detach())
            if cfg.codebook_update == "loss":
                vq_loss = vq_loss + F.mse_loss(e, residual.detach())
            commit = commit + F.mse_loss(residual, e.detach())
            z_hat = z_hat + e.detach()
            residual = residual - e.detach()
        z_q = z + (z_hat - z).detach()  # straight-through estimator
        x_hat_std = decoder(z_q)
        recon = F.mse_loss(x_hat_std, self._standardize(x))
        loss = recon + vq_loss + cfg.beta * commit
        if self.training and not self._in_fit and cfg.dead_code_reset and self._window:
            self._seen += x.shape[0]
            if self._seen >= self._window:
                self._reset_dead(z.detach())
        return QuantizerOutput(reconstruction=x_hat_std * self.x_scale + self.x_mean, codes=codes, loss=loss)

    def _track(self, level: int, code: torch.Tensor, residual: torch.Tensor) -> None:
        k = self.config.codebook_size
        counts = torch.bincount(code, minlength=k).to(self.usage.dtype)
        self.usage[level] += counts
        if self.config.codebook_update == "ema":
            decay = self.config.ema_decay
            sums = cluster_sums(residual, code, k)
            self.ema_count[level].mul_(decay).add_(counts, alpha=1 - decay)
            self.ema_sum[level].mul_(decay).add_(sums, alpha=1 - decay)
            n = self.ema_count[level].sum()
            smoothed = (self.ema_count[level] + 1e-5) / (n + k * 1e-5) * n
            with torch.no_grad():
                self.codebooks[level].copy_(self.ema_sum[level] / smoothed[:, None])

    # ------------------------------------------------------------------ initialisation and dead codes
    @torch.no_grad()
    def _init_codebooks(self, x: torch.Tensor, *, fit_standardizer: bool) -> None:
        """Standardiser from ``x`` and level-by-level k-means codebooks on the residuals of its latents."""
        cfg = self.config
        if fit_standardizer:
            self._fit_standardizer(x)
        z = self.latent(x)
        residual = z.clone()
        gen = torch.Generator().manual_seed(cfg.seed)
        for level in range(cfg.levels):
            if cfg.kmeans_init:
                cent, code = kmeans(residual, cfg.codebook_size, n_iter=cfg.kmeans_iters, generator=gen)
            else:
                idx = torch.randint(residual.shape[0], (cfg.codebook_size,), generator=gen)
                cent = residual[idx] + 1e-3 * torch.randn(cfg.codebook_size, cfg.latent_dim, generator=gen)
                code = nearest(residual, cent)
            self.codebooks[level].copy_(cent)
            counts = torch.bincount(code, minlength=cfg.codebook_size).float()
            self.ema_count[level].copy_(counts)
            self.ema_sum[level].copy_(cent * counts[:, None])
            if self._balanced(level) and residual.shape[0] > 1 and not self._in_fit:
                # forward() before fit: price the first batch; fit() prices all data at its end (calibrate)
                self.prices.copy_(balanced_prices(squared_distances(residual, cent), n_iter=20,
                                                  epsilon=cfg.sinkhorn_epsilon))
            elif self._balanced(level):
                self.prices.zero_()
            residual -= cent[code]
        self.initialized.fill_(True)
        self.usage.zero_()
        self._seen = 0

    @torch.no_grad()
    def _reset_dead(self, z: torch.Tensor, *, count_now: bool = False) -> int:
        """Re-seed codes unused since the last reset at the worst-fitted residuals of ``z`` ``(N, d)``.

        Levels are processed in order and assignments recomputed, so each re-seeded codeword is exactly some
        vector's residual. ``count_now``: usage is counted on ``z`` itself, level by level after the upstream
        re-seeding (then every code of the unbalanced levels ends up used by ``z``). Returns the number of
        codes re-seeded."""
        cfg = self.config
        n_reset = 0
        residual = z.clone()
        for level in range(cfg.levels):
            book = self.codebooks[level]
            if count_now:
                code = self._assign(residual, level, batch_balance=False)
                self.usage[level] = torch.bincount(code, minlength=cfg.codebook_size).to(self.usage.dtype)
            dead = torch.nonzero(self.usage[level] == 0).flatten()
            if dead.numel():
                err = squared_distances(residual, book).min(dim=1).values  # (N,)
                take = min(dead.numel(), residual.shape[0])
                worst = torch.argsort(err, descending=True, stable=True)[:take]
                book[dead[:take]] = residual[worst]
                self.ema_count[level, dead[:take]] = 1.0
                self.ema_sum[level, dead[:take]] = residual[worst]
                n_reset += take
            code = self._assign(residual, level, batch_balance=False)
            residual -= book[code]
        self.usage.zero_()
        self._seen = 0
        return n_reset

    @torch.no_grad()
    def reset_dead_codes(self, x: torch.Tensor) -> int:
        """Public form of the dead-code reset on raw inputs ``x`` ``(N, D)``; returns the codes re-seeded."""
        x = check_vectors(x, dim=self.input_dim)
        return self._reset_dead(self.latent(x))

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> int:
        """Settle the codebooks on the final population ``x`` ``(N, D)`` (e.g. after joint training): with
        ``dead_code_reset``, codes ``x`` leaves unused are re-seeded level by level; then the balanced last
        level's prices are recomputed exactly. Returns the number of codes re-seeded."""
        self._require_fitted()
        x = check_vectors(x, dim=self.input_dim)
        n_reset = self._reset_dead(self.latent(x), count_now=True) if self.config.dead_code_reset else 0
        if not self.config.balanced_last_level or x.shape[0] < 2:
            return n_reset
        last = self.config.levels - 1
        residual = self._residual(self.latent(x), last)
        dist = squared_distances(residual, self.codebooks[last])
        self.prices.copy_(balanced_prices(dist, epsilon=self.config.sinkhorn_epsilon, n_iter=20,
                                          init_prices=self.prices))
        return n_reset

    def _residual(self, z: torch.Tensor, level: int, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Residual at ``level``: after ``prefix`` codes, or after the greedy codes of levels ``< level``."""
        residual = z.clone()
        for j in range(level):
            code = prefix[:, j] if prefix is not None else self._assign(residual, j, batch_balance=False)
            residual -= self.codebooks[j].detach()[code]
        return residual

    # ------------------------------------------------------------------ Quantizer protocol
    def fit(self, x: TensorLike) -> FitReport:
        """Train on ``x`` ``(N, D)`` (AdamW, seeded shuffles); loss per epoch.

        Schedule: ``warmup_steps`` plain autoencoder steps, the k-means initialisation of every level on the
        latents, then :meth:`training_schedule` (batch, epochs) with a cosine learning rate decayed to 10%.
        """
        cfg = self.config
        x = check_vectors(x, dim=cfg.input_dim)
        start = time.perf_counter()
        if self.encoder is None or self.input_dim != x.shape[1]:
            self.build(x.shape[1])
        self._gen.manual_seed(cfg.seed + 1)
        n = x.shape[0]
        batch_size, epochs = self.training_schedule(n)
        self._fit_standardizer(x)
        self._warm_up(x, batch_size)
        self._in_fit = True
        try:
            self._init_codebooks(x, fit_standardizer=False)
        finally:
            self._in_fit = False
        nets = [p for name, p in self.named_parameters() if p.requires_grad and name != "codebooks"]
        groups: list[dict[str, Any]] = [{"params": nets}]
        if self.codebooks.requires_grad:  # codewords must keep up with a moving encoder: a larger step
            book_lr = cfg.lr * cfg.codebook_lr_scale
            groups.append({"params": [self.codebooks], "lr": book_lr, "weight_decay": 0.0})
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, math.ceil(n / batch_size))
        total_steps = max(1, epochs * steps_per_epoch)
        def cosine(step: int) -> float:
            return 0.1 + 0.45 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        losses: list[float] = []
        n_reset = 0
        self.train()
        self._in_fit = True
        try:
            for _ in range(epochs):
                order = torch.randperm(n, generator=self._gen)
                total = 0.0
                for i in range(0, n, batch_size):
                    idx = order[i : i + batch_size]
                    if idx.numel() < 2 and n >= 2:
                        continue
                    out = self.forward(x[idx])
                    optimizer.zero_grad(set_to_none=True)
                    out.loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += float(out.loss.detach()) * idx.numel()
                losses.append(total / n)
                if cfg.dead_code_reset:
                    with torch.no_grad():
                        n_reset += self._reset_dead(self.latent(x))
        finally:
            self._in_fit = False
            self.eval()
        self._window = n
        self._seen = 0
        n_reset += self.calibrate(x)  # codes unused by the final encoder get a vector each; exact prices
        self.usage.zero_()
        with torch.no_grad():
            mse = float((self.decode(self.encode(x)) - x).pow(2).sum(1).mean())
        return FitReport(losses=losses, stats={"mse": mse, "dead_codes_reset": float(n_reset),
                                               "epochs": float(epochs), "batch_size": float(batch_size),
                                               "seconds": time.perf_counter() - start})

    def training_schedule(self, n: int) -> tuple[int, int]:
        """``(batch_size, epochs)`` of :meth:`fit` on ``n`` vectors: ``config.epochs`` of
        ``config.batch_size``, or, when that is fewer than ``min_steps`` steps, batches of
        ``max(64, ceil(N/8))`` (never more than ``batch_size``) and as many epochs as reach ``min_steps``."""
        cfg = self.config
        batch, epochs = min(cfg.batch_size, max(n, 2)), cfg.epochs
        if cfg.min_steps and epochs * math.ceil(n / batch) < cfg.min_steps:
            batch = max(2, min(cfg.batch_size, max(64, math.ceil(n / 8))))
            epochs = max(epochs, math.ceil(cfg.min_steps / math.ceil(n / batch)))
        return batch, epochs

    @torch.no_grad()
    def _fit_standardizer(self, x: torch.Tensor) -> None:
        if self.config.standardize:
            self.x_mean = x.mean(0)
            rms = (x - self.x_mean).pow(2).mean().sqrt()
            self.x_scale = rms if float(rms) > 0 else torch.ones(())

    def _warm_up(self, x: torch.Tensor, batch_size: int) -> None:
        """``warmup_steps`` AdamW steps of the plain autoencoder ``‖dec(enc(x)) − x‖² / D``."""
        steps = self.config.warmup_steps
        if not steps or x.shape[0] < 2:
            return
        encoder, decoder = self._nets()
        optimizer = torch.optim.AdamW([*encoder.parameters(), *decoder.parameters()], lr=self.config.lr,
                                      weight_decay=self.config.weight_decay)
        xs = self._standardize(x)
        gen = torch.Generator().manual_seed(self.config.seed + 2)
        self.train()
        for _ in range(steps):
            idx = torch.randint(x.shape[0], (min(batch_size, x.shape[0]),), generator=gen)
            loss = F.mse_loss(decoder(encoder(xs[idx])), xs[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        self.eval()

    @torch.no_grad()
    def encode(self, x: TensorLike) -> torch.Tensor:
        """Codes ``(N, L)``: greedy residual assignment of the latents (priced on the balanced last level)."""
        self._require_fitted()
        x = check_vectors(x, dim=self.input_dim)
        residual = self.latent(x)
        codes = torch.empty(x.shape[0], self.config.levels, dtype=torch.int64)
        for level in range(self.config.levels):
            codes[:, level] = self._assign(residual, level, batch_balance=False)
            residual -= self.codebooks[level][codes[:, level]]
        return codes

    def decode(self, codes: TensorLike) -> torch.Tensor:
        """Reconstruction ``(N, D)`` = decoder(Σ_l e_l[codes_l]); a prefix ``(N, l<L)`` decodes coarser."""
        _, decoder = self._require_fitted()
        codes = check_codes(codes, levels=self.config.levels, codebook_size=self.config.codebook_size,
                            allow_prefix=True)
        with torch.no_grad():
            return decoder(decode_sum(self.codebooks.detach(), codes)) * self.x_scale + self.x_mean

    @torch.no_grad()
    def code_distances(self, x: TensorLike, level: int, prefix: TensorLike) -> torch.Tensor:
        """Assignment costs ``(N, K)`` of the latent residual after ``prefix`` ``(N, >=level)``: squared
        distances plus, on the balanced last level, each code's surcharge ``max(price) − price_k`` (so their
        argmin is what :meth:`encode` picks)."""
        self._require_fitted()
        check_level(level, self.config.levels)
        x = check_vectors(x, dim=self.input_dim)
        prefix = check_prefix(prefix, n=x.shape[0], level=level, codebook_size=self.config.codebook_size)
        residual = self._residual(self.latent(x), level, prefix)
        dist = squared_distances(residual, self.codebooks[level].detach())
        if self._balanced(level):
            dist += self.prices.max() - self.prices
        return dist

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """Restore from :meth:`state_dict` (builds the networks first, inferring ``D`` from the weights)."""
        weight = state_dict.get("encoder.0.weight")
        if weight is None:
            raise QuantizerError("rqvae state has no 'encoder.0.weight': not an rqvae state_dict")
        dim = int(weight.shape[1])
        if self.encoder is None or self.input_dim != dim:
            self.build(dim)
        books = state_dict.get("codebooks")
        cfg = self.config
        if books is None or tuple(books.shape) != (cfg.levels, cfg.codebook_size, cfg.latent_dim):
            got = None if books is None else tuple(books.shape)
            raise QuantizerError(f"rqvae state 'codebooks' must have shape ({cfg.levels}, "
                                 f"{cfg.codebook_size}, {cfg.latent_dim}), got {got}")
        self.x_mean = torch.zeros(dim)
        try:
            result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as exc:
            raise QuantizerError(f"rqvae state does not match its config: {exc}") from exc
        self.eval()
        return result


SPEC = QuantizerSpec("rqvae", RQVAEConfig, RQVAE.from_config)  # also the entry-point value
register_quantizer(SPEC.kind, SPEC.config_class, SPEC.factory)
