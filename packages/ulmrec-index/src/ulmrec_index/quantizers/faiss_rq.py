"""``faiss``: faiss's ``ResidualQuantizer`` (beam-search residual quantization) behind the optional extra.

faiss is imported only when a quantizer of this kind is fitted or loaded; without it the error says
``pip install ulmrec-index[faiss]``. Codes are unpacked from faiss's bit strings to ``(N, L)`` int64; the
state is the codebooks as a tensor ``(L, K, D)`` (no faiss serialization, no pickle), copied back into a fresh
``ResidualQuantizer`` on load.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from ulmrec_index.quantizers._checks import check_codes, check_level, check_prefix, check_vectors
from ulmrec_index.quantizers.base import FitReport, QuantizerConfig, TensorLike
from ulmrec_index.quantizers.errors import NotFittedError, QuantizerError
from ulmrec_index.quantizers.registry import QuantizerSpec, register_quantizer
from ulmrec_index.quantizers.residual import decode_sum, level_distances


def import_faiss() -> Any:
    """The ``faiss`` module, or a :class:`QuantizerError` naming the extra that installs it."""
    try:
        import faiss
    except ImportError as exc:
        raise QuantizerError("the 'faiss' quantizer needs faiss: pip install 'ulmrec-index[faiss]' "
                             f"(import failed: {exc})") from exc
    return faiss


class FaissRQConfig(QuantizerConfig):
    """faiss ``ResidualQuantizer``; ``codebook_size`` must be a power of two (faiss packs ``log2 K`` bits)."""

    kind: Literal["faiss"] = Field(default="faiss", description="Registry key.")
    max_beam_size: int = Field(default=5, ge=1, le=256,
                               description="Beam width of faiss's encoder (1 = greedy residual search).")
    train_type: Literal["default", "progressive_dim", "refine_codebook"] = Field(
        default="progressive_dim",
        description="faiss training flags: plain k-means per level, progressive-dimension k-means (faiss's "
                    "default), or additionally refine all codebooks jointly by least squares.")
    niter: int = Field(default=25, ge=1, description="k-means iterations per level (faiss cp.niter).")

    @field_validator("codebook_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"faiss needs a power-of-two codebook_size, got {value}")
        return value


class FaissRQ:
    """Wraps ``faiss.ResidualQuantizer(D, L, log2 K)``."""

    def __init__(self, *, config: FaissRQConfig) -> None:
        self._config = config
        self._rq: Any = None
        self.codebooks: torch.Tensor | None = None  # (L, K, D)

    @property
    def config(self) -> FaissRQConfig:
        return self._config

    @classmethod
    def from_config(cls, config: FaissRQConfig) -> FaissRQ:
        return cls(config=config)

    @property
    def nbits(self) -> int:
        return int(math.log2(self.config.codebook_size))

    def _new_rq(self, dim: int) -> Any:
        faiss = import_faiss()
        cfg = self.config
        rq = faiss.ResidualQuantizer(dim, cfg.levels, self.nbits)
        rq.max_beam_size = min(cfg.max_beam_size, cfg.codebook_size)  # a beam wider than K yields junk codes
        rq.train_type = {
            "default": 0,
            "progressive_dim": faiss.ResidualQuantizer.Train_progressive_dim,
            "refine_codebook": faiss.ResidualQuantizer.Train_progressive_dim
            | faiss.ResidualQuantizer.Train_refine_codebook,
        }[cfg.train_type]
        rq.cp.seed = cfg.seed
        rq.cp.niter = cfg.niter
        rq.cp.min_points_per_centroid = 1  # small inputs are fine here; silences faiss's stderr warning
        rq.verbose = False
        return rq

    def _fitted(self) -> tuple[Any, torch.Tensor]:
        if self._rq is None or self.codebooks is None:
            raise NotFittedError("faiss quantizer is not fitted: call fit(x) or load_state_dict() first")
        return self._rq, self.codebooks

    def fit(self, x: TensorLike) -> FitReport:
        """Train faiss's residual quantizer on ``x`` ``(N, D)``; reports the training MSE."""
        x = check_vectors(x)
        faiss = import_faiss()
        data = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        need = max(self.config.codebook_size, x.shape[1] + 1)
        if x.shape[0] < need:  # faiss needs >= K points (k-means) and > D (PCA): repeat rows + tiny jitter
            reps = math.ceil(need / x.shape[0])
            tiled = np.tile(data, (reps, 1))
            scale = 1e-4 * (float(data.std()) or 1.0)
            noise = np.random.default_rng(self.config.seed).standard_normal(tiled.shape).astype(np.float32)
            tiled[x.shape[0]:] += scale * noise[x.shape[0]:]
            data = np.ascontiguousarray(tiled)
        rq = self._new_rq(x.shape[1])
        try:
            rq.train(data)
        except RuntimeError as exc:
            shape = f"{x.shape[0]} x {x.shape[1]}"
            raise QuantizerError(f"faiss could not train on {shape} vectors: {exc}") from exc
        books = faiss.vector_to_array(rq.codebooks).reshape(self.config.levels, self.config.codebook_size, -1)
        self._rq, self.codebooks = rq, torch.from_numpy(books.copy())
        mse = float((self.decode(self.encode(x)) - x).pow(2).sum(1).mean())
        return FitReport(losses=[mse], stats={"mse": mse})

    def encode(self, x: TensorLike) -> torch.Tensor:
        """Codes ``(N, L)`` from faiss's beam search."""
        rq, books = self._fitted()
        faiss = import_faiss()
        x = check_vectors(x, dim=books.shape[2])
        packed = rq.compute_codes(np.ascontiguousarray(x.numpy(), dtype=np.float32))
        codes = faiss.unpack_bitstrings(packed, self.config.levels, self.nbits)
        return torch.from_numpy(np.asarray(codes, dtype=np.int64))

    def decode(self, codes: TensorLike) -> torch.Tensor:
        """Reconstruction ``(N, D)`` (faiss's decoder; a code prefix ``(N, l<L)`` sums its codewords)."""
        rq, books = self._fitted()
        codes = check_codes(codes, levels=self.config.levels, codebook_size=self.config.codebook_size,
                            allow_prefix=True)
        if codes.shape[1] < self.config.levels:
            return decode_sum(books, codes)
        faiss = import_faiss()
        packed = faiss.pack_bitstrings(np.ascontiguousarray(codes.numpy().astype(np.int32)), self.nbits)
        return torch.from_numpy(np.asarray(rq.decode(packed), dtype=np.float32))

    def code_distances(self, x: TensorLike, level: int, prefix: TensorLike) -> torch.Tensor:
        """Squared distances ``(N, K)`` of the residual after ``prefix`` ``(N, >=level)`` to the codewords."""
        _, books = self._fitted()
        check_level(level, self.config.levels)
        x = check_vectors(x, dim=books.shape[2])
        prefix = check_prefix(prefix, n=x.shape[0], level=level, codebook_size=self.config.codebook_size)
        return level_distances(x, books, level, prefix)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"codebooks": self._fitted()[1].clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        books = state.get("codebooks")
        if books is None or books.ndim != 3 or tuple(books.shape[:2]) != (cfg.levels, cfg.codebook_size):
            got = None if books is None else tuple(books.shape)
            raise QuantizerError(f"faiss state needs 'codebooks' of shape ({cfg.levels}, "
                                 f"{cfg.codebook_size}, D), got {got}")
        faiss = import_faiss()
        books = books.detach().to(torch.float32).contiguous()
        rq = self._new_rq(books.shape[2])
        faiss.copy_array_to_vector(books.numpy().ravel(), rq.codebooks)
        rq.is_trained = True
        self._rq, self.codebooks = rq, books.clone()


SPEC = QuantizerSpec("faiss", FaissRQConfig, FaissRQ.from_config)  # also the entry-point value
register_quantizer(SPEC.kind, SPEC.config_class, SPEC.factory)
