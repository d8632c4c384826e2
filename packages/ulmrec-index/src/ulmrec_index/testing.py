"""A conformance test class for any quantizer (built-in or third-party). Needs pytest and hypothesis.

Subclass it in a test module and give the config (a dict with ``kind`` or a config instance); every test below
then runs against that quantizer::

    from ulmrec_index.testing import QuantizerConformance

    class TestMyQuantizer(QuantizerConformance):
        config = {"kind": "myquant", "levels": 2, "codebook_size": 8}

Override :meth:`make_config` instead for a computed config, and the class attributes (``dim``, ``n_train``,
``error_rtol``…) to fit the quantizer's needs. Keep configs small: the class fits the quantizer about a dozen
times. Checked properties: codes are int64 in ``[0, K)`` with L levels; encoding is deterministic in eval mode
and survives a state_dict round trip through a safetensors file; ``decode(encode(x))`` has ``x``'s shape and
its training error does not grow when a level is added (same data and seed, within tolerance); after
:func:`~ulmrec_index.uniqueness.make_unique` codes are unique for any input, duplicates and near-duplicates
included; Sinkhorn on the quantizer's distances is finite with matching marginals; bad input is refused.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

try:
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - only without the test tools
    raise ImportError("ulmrec_index.testing needs pytest and hypothesis (pip install them)") from exc

import torch
from safetensors.torch import load_file, save_file

from ulmrec_eval.errors import UlmrecError
from ulmrec_index.quantizers.base import Quantizer, QuantizerConfig
from ulmrec_index.quantizers.registry import (
    available_quantizers,
    create_quantizer,
    get_quantizer_config_class,
    parse_quantizer_config,
)
from ulmrec_index.sinkhorn import sinkhorn
from ulmrec_index.uniqueness import collision_count, make_unique, make_unique_for_quantizer

__all__ = ["QuantizerConformance", "conformance_data"]

#: Examples per hypothesis property (override with ULMREC_CONFORMANCE_EXAMPLES for a deeper nightly run).
EXAMPLES = int(os.environ.get("ULMREC_CONFORMANCE_EXAMPLES", "6"))
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible, never flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors, HealthCheck.data_too_large],
)


def conformance_data(n: int, dim: int, *, seed: int, dup_fraction: float = 0.0, jitter: float = 0.0,
                     clusters: int = 6) -> torch.Tensor:
    """``(n, dim)`` float32 test vectors: Gaussian clusters, of which a ``dup_fraction`` of rows are copies of
    earlier rows plus ``jitter``-sized noise (0: exact duplicates)."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(clusters, dim, generator=gen)
    x = centres[torch.randint(clusters, (n,), generator=gen)] + torch.randn(n, dim, generator=gen)
    n_dup = round(dup_fraction * (n - 1))
    if n_dup > 0:
        rows = torch.arange(n - n_dup, n)
        src = torch.randint(n - n_dup, (n_dup,), generator=gen)
        x[rows] = x[src] + jitter * torch.randn(n_dup, dim, generator=gen)
    return x


def _inputs() -> st.SearchStrategy[tuple[int, int, float, float]]:
    return st.tuples(
        st.integers(1, 48),  # n
        st.integers(0, 2**16),  # seed
        st.sampled_from([0.0, 0.3, 0.9]),  # duplicate fraction
        st.sampled_from([0.0, 1e-6, 1e-3]),  # near-duplicate jitter
    )


class QuantizerConformance:
    """Base class of quantizer conformance tests (pytest collects the subclasses: name them ``Test…``)."""

    #: The quantizer config: a dict with ``kind`` or a config instance (or override :meth:`make_config`).
    config: ClassVar[dict[str, Any] | QuantizerConfig | None] = None
    #: Input dimension of the test vectors.
    dim: ClassVar[int] = 8
    #: Vectors the shared fitted quantizer is trained on.
    n_train: ClassVar[int] = 120
    #: Tolerance of "the error does not grow when a level is added": ``e(L+1) <= e(L) * (1 + rtol) + atol``.
    error_rtol: ClassVar[float] = 0.02
    error_atol: ClassVar[float] = 1e-5
    #: Whether every config field must carry a description (the built-ins' house style).
    require_field_descriptions: ClassVar[bool] = True

    # ---------------------------------------------------------------- hooks
    def make_config(self, **overrides: Any) -> QuantizerConfig:
        """The config under test, with ``overrides`` (``levels=…``) applied."""
        if self.config is None:
            raise NotImplementedError("set `config` or override make_config() in the conformance subclass")
        return parse_quantizer_config(self.config, **overrides)

    def make_quantizer(self, **overrides: Any) -> Quantizer:
        return create_quantizer(self.make_config(**overrides))

    def train_data(self, seed: int = 0) -> torch.Tensor:
        return conformance_data(self.n_train, self.dim, seed=seed)

    @staticmethod
    def set_eval(quantizer: Quantizer) -> None:
        if isinstance(quantizer, torch.nn.Module):
            quantizer.eval()

    def _fit(self, **overrides: Any) -> Quantizer:
        torch.manual_seed(0)
        quantizer = self.make_quantizer(**overrides)
        quantizer.fit(self.train_data())
        self.set_eval(quantizer)
        return quantizer

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> Quantizer:
        """The quantizer fitted once on :meth:`train_data` (shared by the tests of one subclass)."""
        torch.set_num_threads(1)
        return cls()._fit()

    # ---------------------------------------------------------------- the contract
    def test_config_and_registry(self) -> None:
        cfg = self.make_config()
        assert cfg.kind in available_quantizers()
        assert get_quantizer_config_class(cfg.kind) is type(cfg)
        assert parse_quantizer_config(cfg.model_dump(mode="json")) == cfg  # a JSON round trip of the config
        if self.require_field_descriptions:
            missing = [name for name, f in type(cfg).model_fields.items() if not f.description]
            assert not missing, f"config fields without a description: {missing}"
        assert isinstance(create_quantizer(cfg), Quantizer)

    @_SETTINGS
    @given(inputs=_inputs())
    def test_codes_are_valid(self, fitted: Quantizer, inputs: tuple[int, int, float, float]) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = fitted.encode(x)
        cfg = fitted.config
        assert codes.dtype == torch.int64
        assert tuple(codes.shape) == (n, cfg.levels)
        assert int(codes.min()) >= 0
        assert int(codes.max()) < cfg.codebook_size

    @_SETTINGS
    @given(inputs=_inputs())
    def test_encode_is_deterministic_and_survives_state_round_trip(
        self, fitted: Quantizer, inputs: tuple[int, int, float, float]
    ) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = fitted.encode(x)
        assert torch.equal(fitted.encode(x.clone()), codes)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "quantizer.safetensors"
            save_file({k: v.detach().contiguous().clone() for k, v in fitted.state_dict().items()}, str(path))
            restored = create_quantizer(parse_quantizer_config(fitted.config.model_dump(mode="json")))
            restored.load_state_dict(load_file(str(path)))
        self.set_eval(restored)
        assert torch.equal(restored.encode(x), codes)
        torch.testing.assert_close(restored.decode(codes), fitted.decode(codes))

    @_SETTINGS
    @given(inputs=_inputs())
    def test_decode_has_input_shape(self, fitted: Quantizer, inputs: tuple[int, int, float, float]) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        recon = fitted.decode(fitted.encode(x))
        assert recon.shape == x.shape
        assert bool(torch.isfinite(recon).all())

    @_SETTINGS
    @given(seed=st.integers(0, 2**16))
    def test_error_does_not_grow_when_a_level_is_added(self, seed: int) -> None:
        base = self.make_config()
        x = conformance_data(self.n_train, self.dim, seed=seed)
        errors = []
        for levels in (base.levels, base.levels + 1):
            torch.manual_seed(0)
            quantizer = self.make_quantizer(levels=levels, seed=seed)
            quantizer.fit(x)
            self.set_eval(quantizer)
            errors.append(float((quantizer.decode(quantizer.encode(x)) - x).pow(2).sum(1).mean()))
        assert errors[1] <= errors[0] * (1 + self.error_rtol) + self.error_atol, errors

    @_SETTINGS
    @given(inputs=_inputs())
    def test_codes_are_unique_after_repair(self, fitted: Quantizer,
                                           inputs: tuple[int, int, float, float]) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = fitted.encode(x)
        result = make_unique_for_quantizer(fitted, x, codes)
        levels = fitted.config.levels
        assert collision_count(result.codes) == 0
        assert result.codes.shape[0] == n
        assert result.codes.shape[1] >= levels
        assert result.n_collided_before == collision_count(codes)
        assert int(result.codes[:, :levels].max()) < fitted.config.codebook_size
        assert torch.equal(result.codes[:, : levels - 1], codes[:, : levels - 1])  # only the last level moves
        # Many more copies of one vector than K: repair needs (and uses) the extra level.
        many = x[:1].repeat(fitted.config.codebook_size + 3, 1)
        crowded = make_unique(fitted.encode(many), codebook_size=fitted.config.codebook_size,
                              distances_last_level=None)
        assert collision_count(crowded.codes) == 0
        assert crowded.extra_level_used

    @_SETTINGS
    @given(inputs=_inputs())
    def test_code_distances_and_sinkhorn(self, fitted: Quantizer,
                                         inputs: tuple[int, int, float, float]) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = fitted.encode(x)
        cfg = fitted.config
        for level in range(cfg.levels):
            dist = fitted.code_distances(x, level, codes[:, :level])
            assert tuple(dist.shape) == (n, cfg.codebook_size)
            assert bool(torch.isfinite(dist).all())
            assert float(dist.min()) >= -1e-4
        plan = sinkhorn(dist, epsilon=0.1, n_iter=3000, tol=1e-7)
        assert bool(torch.isfinite(plan).all())
        assert float(plan.min()) >= 0
        torch.testing.assert_close(plan.sum(1), torch.full((n,), 1.0 / n), rtol=1e-3, atol=1e-6)
        torch.testing.assert_close(plan.sum(0), torch.full((cfg.codebook_size,), 1.0 / cfg.codebook_size),
                                   rtol=1e-3, atol=1e-6)

    def test_bad_input_is_refused(self, fitted: Quantizer) -> None:
        x = self.train_data(seed=1)[:5]
        bad = x.clone()
        bad[2, 0] = float("nan")
        infinite = x.clone()
        infinite[1, 1] = float("inf")
        for wrong in (bad, infinite, x[:, :-1], x[:0], x[0]):
            with pytest.raises((UlmrecError, ValueError)):
                fitted.encode(wrong)
        with pytest.raises((UlmrecError, ValueError)):
            self.make_quantizer().fit(bad)
        with pytest.raises((UlmrecError, ValueError)):
            self.make_quantizer().fit(x[:0])
        with pytest.raises((UlmrecError, ValueError)):
            self.make_quantizer().encode(x)  # not fitted
        codes = fitted.encode(x)
        with pytest.raises((UlmrecError, ValueError)):
            fitted.decode(codes + fitted.config.codebook_size)  # out of range

    def test_fewer_vectors_than_codes(self) -> None:
        cfg = self.make_config()
        n = max(1, cfg.codebook_size // 2)
        quantizer = self.make_quantizer()
        x = conformance_data(n, self.dim, seed=3)
        quantizer.fit(x)
        self.set_eval(quantizer)
        codes = quantizer.encode(x)
        assert tuple(codes.shape) == (n, cfg.levels)
        assert int(codes.max()) < cfg.codebook_size
        assert collision_count(make_unique_for_quantizer(quantizer, x, codes).codes) == 0
