"""A conformance test class for any quantizer (built-in or third-party). Needs pytest and hypothesis.

Subclass it in a test module and give the config (a dict with ``kind`` or a config instance); every test below
then runs against that quantizer::

    from ulmrec_index.testing import QuantizerConformance

    class TestMyQuantizer(QuantizerConformance):
        config = {"kind": "myquant", "levels": 2, "codebook_size": 8}

Override :meth:`make_config` instead for a computed config, and the class attributes (``dim``, ``n_train``,
``error_rtol``, ``max_error_ratio``, ``level_choices``, ``codebook_size_choices``…) to fit the quantizer's
needs. Keep configs small: the class fits the quantizer a few dozen times.

Checked properties (hypothesis draws the data and, where marked *, the number of levels and the codebook
size): codes are int64 in ``[0, K)`` with L levels; encoding is deterministic in eval mode, survives a
state_dict round trip through a safetensors file and gives each vector the same code whatever batch it is in
(*); the reconstruction error on clustered data is well below the error of predicting the mean vector (*),
so a quantizer that ignores its input fails; decoding a longer code prefix never increases the error (*);
on data without cluster structure, which no single level can capture, **every added level strictly lowers
the error** (by at least ``min_level_gain``; every multi-level count of ``level_choices`` is fitted); the
decoded vector **depends on every level of the code** (for each row and level some other code decodes
differently), and equals :meth:`~QuantizerConformance.expected_decode` — the sum of the chosen codewords,
read from the quantizer's state — for every code prefix; the last level's code is the argmin of
:meth:`code_distances` (*), which collision repair relies on; the training error does not grow when a level
is added; a vector's code is the same in any batch, alone, split or shuffled, for **each** level count of
``level_choices`` (explicitly, not left to the draw); after :func:`~ulmrec_index.uniqueness.make_unique`
codes are unique for any input, duplicates and near-duplicates included; Sinkhorn on the quantizer's
distances is finite with matching marginals; bad input is refused. Failures say which values broke the
property (the messages are explicit, since pytest does not rewrite asserts inside an installed module).

Examples per property: ``ULMREC_CONFORMANCE_EXAMPLES`` (default 6, derandomized: the same examples on every
run); ``ULMREC_CONFORMANCE_PROFILE=nightly`` draws fresh random examples, 5× as many by default.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

try:
    import pytest
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - only without the test tools
    raise ImportError("ulmrec_index.testing needs pytest and hypothesis (pip install them)") from exc

import torch
from safetensors.torch import load_file, save_file

from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_index.quantizers.base import Quantizer, QuantizerConfig
from ulmrec_index.quantizers.registry import (
    available_quantizers,
    create_quantizer,
    get_quantizer_config_class,
    parse_quantizer_config,
)
from ulmrec_index.sinkhorn import sinkhorn
from ulmrec_index.uniqueness import collision_count, make_unique, make_unique_for_quantizer

__all__ = ["QuantizerConformance", "conformance_data", "expect", "unstructured_data"]

_NIGHTLY = os.environ.get("ULMREC_CONFORMANCE_PROFILE", "") == "nightly"
#: Examples per hypothesis property (ULMREC_CONFORMANCE_EXAMPLES overrides; nightly: 5× by default).
EXAMPLES = int(os.environ.get("ULMREC_CONFORMANCE_EXAMPLES", "30" if _NIGHTLY else "6"))
_HEALTH = [HealthCheck.too_slow, HealthCheck.differing_executors, HealthCheck.data_too_large]
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not _NIGHTLY,  # CI: the same examples on every run, so a failure is reproducible, never flaky
    suppress_health_check=_HEALTH,
    database=None,
)
#: Properties that fit a fresh quantizer per example run half as many.
_FIT_SETTINGS = settings(_SETTINGS, max_examples=max(2, EXAMPLES // 2))


def expect(condition: bool, message: str) -> None:
    """``assert`` that survives ``python -O`` and says what broke (installed modules are not rewritten)."""
    if not condition:
        raise AssertionError(message)


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


def unstructured_data(n: int, dim: int, *, seed: int) -> torch.Tensor:
    """``(n, dim)`` float32 standard normal vectors: no cluster structure, so no single level of a residual
    quantizer can capture them and each further level has error left to remove."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def _inputs(min_n: int = 1) -> st.SearchStrategy[tuple[int, int, float, float]]:
    return st.tuples(
        st.integers(min_n, 48),  # n
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
    #: Tolerance of "the error does not grow when a level is added": ``e(L+1) <= e(L) * (1 + rtol) + atol``
    #: (also used for "a longer code prefix decodes no worse").
    error_rtol: ClassVar[float] = 0.02
    error_atol: ClassVar[float] = 1e-5
    #: The training error on clustered data must be at most this fraction of the mean-vector baseline
    #: ``mean_i ||x_i − mean(x)||²`` (the error of a quantizer that ignores its input).
    max_error_ratio: ClassVar[float] = 0.5
    #: "Every added level strictly lowers the error": on :func:`unstructured_data`, decoding ``p + 1`` levels
    #: must give at most ``(1 − min_level_gain)`` × the error of ``p`` levels.
    min_level_gain: ClassVar[float] = 0.02
    #: Tolerance of "decode equals the sum of the chosen codewords" (:meth:`expected_decode`).
    decode_rtol: ClassVar[float] = 1e-4
    decode_atol: ClassVar[float] = 1e-4
    #: Levels and codebook sizes the properties marked (*) draw from.
    level_choices: ClassVar[tuple[int, ...]] = (1, 2, 3)
    codebook_size_choices: ClassVar[tuple[int, ...]] = (4, 8, 16)
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

    def fit_default(self, **overrides: Any) -> Quantizer:
        """A quantizer of :meth:`make_quantizer` (with ``overrides``) fitted on :meth:`train_data`, in eval
        mode."""
        torch.manual_seed(0)
        quantizer = self.make_quantizer(**overrides)
        quantizer.fit(self.train_data())
        self.set_eval(quantizer)
        return quantizer

    def fit_shape(self, levels: int, codebook_size: int, seed: int) -> tuple[Quantizer, torch.Tensor]:
        """A quantizer of ``levels`` × ``codebook_size`` fitted on clustered data (seed), and the data."""
        torch.manual_seed(0)
        x = conformance_data(self.n_train, self.dim, seed=seed)
        quantizer = self.make_quantizer(levels=levels, codebook_size=codebook_size, seed=seed)
        quantizer.fit(x)
        self.set_eval(quantizer)
        return quantizer, x

    def expected_decode(self, quantizer: Quantizer, codes: torch.Tensor) -> torch.Tensor | None:
        """What ``quantizer.decode(codes)`` must return for ``codes`` ``(N, p <= L)``, computed from the
        quantizer's state without calling ``decode``; None: the quantizer's state has no codewords to sum
        (the check is skipped).

        Default: ``Σ_{l<p} C_l[codes[:, l]]`` with ``C = state_dict()["codebooks"]`` ``(L, K, D)`` when its
        ``D`` is the input dimension (residual quantizers in input space: ``rqkmeans``, ``faiss``). Override
        it for a quantizer whose codewords live elsewhere (``rqvae``: the decoder applied to the latent sum,
        see ``tests/index/test_quantizer_rqvae.py``)."""
        books = quantizer.state_dict().get("codebooks")
        cfg = quantizer.config
        if books is None or tuple(books.shape) != (cfg.levels, cfg.codebook_size, self.dim):
            return None
        out = torch.zeros(codes.shape[0], self.dim, dtype=books.dtype)
        for level in range(codes.shape[1]):
            out += books[level][codes[:, level]]
        return out

    def _multi_levels(self) -> list[int]:
        """The level counts of ``level_choices`` with more than one level (2 when there is none)."""
        return sorted({levels for levels in self.level_choices if levels > 1}) or [2]

    def fit_by_levels(self) -> dict[int, Quantizer]:
        """Level count -> a quantizer of that many levels fitted by :meth:`fit_shape` (codebook sizes taken in
        turn from ``codebook_size_choices``), for each level count of ``level_choices``."""
        sizes = self.codebook_size_choices
        return {levels: self.fit_shape(levels, sizes[i % len(sizes)], seed=i)[0]
                for i, levels in enumerate(sorted(set(self.level_choices)))}

    def _shapes(self) -> st.SearchStrategy[tuple[int, int, int]]:
        return st.tuples(st.sampled_from(self.level_choices), st.sampled_from(self.codebook_size_choices),
                         st.integers(0, 2**16))

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> Quantizer:
        """The quantizer fitted once on :meth:`train_data` (shared by the tests of one subclass)."""
        torch.set_num_threads(1)
        return cls().fit_default()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted_by_levels(cls) -> dict[int, Quantizer]:
        """One quantizer per level count of ``level_choices`` (codebook sizes taken in turn from
        ``codebook_size_choices``), fitted on clustered data: every level count is checked explicitly."""
        torch.set_num_threads(1)
        return cls().fit_by_levels()

    # ---------------------------------------------------------------- the contract
    def test_config_and_registry(self) -> None:
        cfg = self.make_config()
        expect(cfg.kind in available_quantizers(), f"kind {cfg.kind!r} not in {available_quantizers()}")
        registered = get_quantizer_config_class(cfg.kind)
        expect(registered is type(cfg), f"registry holds {registered.__name__} for {cfg.kind!r}, "
                                        f"the config is a {type(cfg).__name__}")
        again = parse_quantizer_config(cfg.model_dump(mode="json"))
        expect(again == cfg, f"config changes in a JSON round trip: {cfg!r} -> {again!r}")
        if self.require_field_descriptions:
            missing = [name for name, f in type(cfg).model_fields.items() if not f.description]
            expect(not missing, f"config fields without a description: {missing}")
        made = create_quantizer(cfg)
        expect(isinstance(made, Quantizer), f"{type(made).__name__} does not implement the Quantizer "
                                            "protocol")

    @_SETTINGS
    @given(inputs=_inputs())
    def test_codes_are_valid(self, fitted: Quantizer, inputs: tuple[int, int, float, float]) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = fitted.encode(x)
        cfg = fitted.config
        expect(codes.dtype == torch.int64, f"codes dtype {codes.dtype}, expected torch.int64")
        expect(tuple(codes.shape) == (n, cfg.levels), f"codes shape {tuple(codes.shape)}, "
                                                      f"expected {(n, cfg.levels)}")
        lo, hi = int(codes.min()), int(codes.max())
        expect(lo >= 0 and hi < cfg.codebook_size, f"codes span [{lo}, {hi}], outside "
                                                   f"[0, {cfg.codebook_size})")

    @_SETTINGS
    @given(inputs=_inputs())
    def test_encode_is_deterministic_and_survives_state_round_trip(
        self, fitted: Quantizer, inputs: tuple[int, int, float, float]
    ) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = fitted.encode(x)
        again = fitted.encode(x.clone())
        expect(torch.equal(again, codes), f"encode is not deterministic: {_diff_rows(codes, again)}")
        expect(torch.equal(fitted.encode(x.numpy()), codes), "encode(numpy array) != encode(tensor)")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "quantizer.safetensors"
            save_file({k: v.detach().contiguous().clone() for k, v in fitted.state_dict().items()}, str(path))
            restored = create_quantizer(parse_quantizer_config(fitted.config.model_dump(mode="json")))
            restored.load_state_dict(load_file(str(path)))
        self.set_eval(restored)
        restored_codes = restored.encode(x)
        expect(torch.equal(restored_codes, codes),
               f"codes change after a state_dict round trip: {_diff_rows(codes, restored_codes)}")
        torch.testing.assert_close(restored.decode(codes), fitted.decode(codes))

    @_SETTINGS
    @example(inputs=(40, 7, 0.0, 0.0), split=0.5)
    @example(inputs=(48, 11, 0.3, 1e-3), split=0.25)
    @given(inputs=_inputs(min_n=2), split=st.floats(0.0, 1.0))
    def test_encode_is_batch_independent(self, fitted_by_levels: dict[int, Quantizer],
                                         inputs: tuple[int, int, float, float], split: float) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        at = round(split * n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        for levels, quantizer in fitted_by_levels.items():
            shape = f"{levels}x{quantizer.config.codebook_size}, {n} rows"
            codes = quantizer.encode(x)
            parts = torch.cat([quantizer.encode(part) for part in (x[:at], x[at:]) if part.shape[0]])
            expect(torch.equal(parts, codes), f"encode depends on the batch ({shape}, split at {at}): "
                                              f"{_diff_rows(codes, parts)}")
            shuffled = torch.empty_like(codes)
            shuffled[perm] = quantizer.encode(x[perm])
            expect(torch.equal(shuffled, codes), f"encode depends on the order of the batch ({shape}): "
                                                 f"{_diff_rows(codes, shuffled)}")
            alone = torch.cat([quantizer.encode(x[i : i + 1]) for i in range(n)])
            expect(torch.equal(alone, codes), f"rows encoded alone differ from the same rows in one batch "
                                              f"({shape}): {_diff_rows(codes, alone)}")

    @_FIT_SETTINGS
    @given(shape=st.data())
    def test_reconstruction_beats_the_mean_baseline(self, shape: st.DataObject) -> None:
        levels, k, seed = shape.draw(self._shapes(), label="levels, codebook_size, seed")
        quantizer, x = self.fit_shape(levels, k, seed)
        error = _mean_error(quantizer.decode(quantizer.encode(x)), x)
        baseline = _mean_error(x.mean(0, keepdim=True).expand_as(x), x)
        expect(error <= self.max_error_ratio * baseline,
               f"reconstruction error {error:.4g} on clustered data ({levels}x{k}, seed {seed}) is "
               f"{error / baseline:.3f} of the mean-vector baseline {baseline:.4g} (must be <= "
               f"{self.max_error_ratio}): the codes carry too little information about the input")

    @_FIT_SETTINGS
    @given(shape=st.data())
    def test_longer_prefix_never_decodes_worse(self, shape: st.DataObject) -> None:
        levels, k, seed = shape.draw(self._shapes(), label="levels, codebook_size, seed")
        quantizer, x = self.fit_shape(levels, k, seed)
        codes = quantizer.encode(x)
        errors = [_mean_error(quantizer.decode(codes[:, :p]), x) for p in range(1, levels + 1)]
        for p in range(1, levels):
            bound = errors[p - 1] * (1 + self.error_rtol) + self.error_atol
            expect(errors[p] <= bound, f"decoding {p + 1} levels gives error {errors[p]:.5g} > {p} levels' "
                                       f"{errors[p - 1]:.5g} ({levels}x{k}, seed {seed}; errors by prefix "
                                       f"length: {[round(e, 5) for e in errors]})")

    @_FIT_SETTINGS
    @given(shape=st.data())
    def test_every_level_strictly_lowers_the_error(self, shape: st.DataObject) -> None:
        k = shape.draw(st.sampled_from(self.codebook_size_choices), label="codebook_size")
        seed = shape.draw(st.integers(0, 2**16), label="seed")
        x = unstructured_data(self.n_train, self.dim, seed=seed)
        for levels in self._multi_levels():
            torch.manual_seed(0)
            quantizer = self.make_quantizer(levels=levels, codebook_size=k, seed=seed)
            quantizer.fit(x)
            self.set_eval(quantizer)
            codes = quantizer.encode(x)
            errors = [_mean_error(quantizer.decode(codes[:, :p]), x) for p in range(1, levels + 1)]
            for p in range(1, levels):
                bound = errors[p - 1] * (1 - self.min_level_gain)
                expect(errors[p] <= bound,
                       f"level {p + 1} of {levels} does not lower the error on unstructured data: "
                       f"{errors[p]:.5g} after {p + 1} levels vs {errors[p - 1]:.5g} after {p} (must be <= "
                       f"{bound:.5g}; {levels}x{k}, seed {seed}; errors by prefix length: "
                       f"{[round(e, 5) for e in errors]})")

    def test_decode_depends_on_every_level(self, fitted: Quantizer) -> None:
        x = self.train_data(seed=2)[:24]
        codes = fitted.encode(x)
        base = fitted.decode(codes)
        k = fitted.config.codebook_size
        for level in range(codes.shape[1]):
            changed = torch.zeros(codes.shape[0], dtype=torch.bool)
            for shift in range(1, k):
                other = codes.clone()
                other[:, level] = (codes[:, level] + shift) % k
                changed |= (fitted.decode(other) - base).abs().amax(dim=1) > 1e-6
            rows = torch.nonzero(~changed).flatten()
            expect(not rows.numel(), f"decode ignores level {level}: no other code at that level changes the "
                                     f"decoded vector of {rows.numel()} of {codes.shape[0]} rows (first row "
                                     f"{int(rows[0]) if rows.numel() else -1})")

    def test_decode_is_the_sum_of_the_chosen_codewords(self, fitted: Quantizer) -> None:
        x = self.train_data(seed=2)
        codes = fitted.encode(x)
        for p in range(1, codes.shape[1] + 1):
            expected = self.expected_decode(fitted, codes[:, :p])
            if expected is None:
                pytest.skip("the quantizer's state has no input-space 'codebooks': override expected_decode "
                            "to check decode")
            got = fitted.decode(codes[:, :p]).detach()
            gap = float((got - expected).abs().max())
            expect(torch.allclose(got, expected, rtol=self.decode_rtol, atol=self.decode_atol),
                   f"decode of the first {p} levels is not the sum of the chosen codewords: largest "
                   f"difference {gap:.6g}")

    @_FIT_SETTINGS
    @given(shape=st.data(), inputs=_inputs())
    def test_code_distances_argmin_is_the_encoded_code(self, shape: st.DataObject,
                                                       inputs: tuple[int, int, float, float]) -> None:
        levels, k, fit_seed = shape.draw(self._shapes(), label="levels, codebook_size, seed")
        quantizer, _ = self.fit_shape(levels, k, fit_seed)
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = quantizer.encode(x)
        last = levels - 1
        dist = quantizer.code_distances(x, last, codes[:, :last])
        chosen = dist.gather(1, codes[:, last:]).squeeze(1)
        best = dist.min(dim=1).values
        slack = 1e-5 * (1.0 + dist.abs().amax(dim=1))  # float ties
        bad = torch.nonzero(chosen > best + slack).flatten()
        if bad.numel():
            i = int(bad[0])
            expect(False, f"{bad.numel()} of {n} rows: the encoded last-level code is not the argmin of "
                          f"code_distances ({levels}x{k}); row {i}: code {int(codes[i, last])} costs "
                          f"{float(chosen[i]):.6g}, code {int(dist[i].argmin())} costs {float(best[i]):.6g}")

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
            errors.append(_mean_error(quantizer.decode(quantizer.encode(x)), x))
        expect(errors[1] <= errors[0] * (1 + self.error_rtol) + self.error_atol,
               f"training error grows from {errors[0]:.5g} ({base.levels} levels) to {errors[1]:.5g} "
               f"({base.levels + 1} levels), seed {seed}")

    @_SETTINGS
    @given(inputs=_inputs())
    def test_codes_are_unique_after_repair(self, fitted: Quantizer,
                                           inputs: tuple[int, int, float, float]) -> None:
        n, seed, dup, jitter = inputs
        x = conformance_data(n, self.dim, seed=seed, dup_fraction=dup, jitter=jitter)
        codes = fitted.encode(x)
        result = make_unique_for_quantizer(fitted, x, codes)
        levels, k = fitted.config.levels, fitted.config.codebook_size
        left = collision_count(result.codes)
        expect(left == 0, f"{left} collisions left after repair of {n} codes")
        expect(result.codes.shape[0] == n and result.codes.shape[1] >= levels,
               f"repaired codes have shape {tuple(result.codes.shape)}, expected ({n}, >={levels})")
        expect(result.n_collided_before == collision_count(codes),
               f"n_collided_before {result.n_collided_before} != {collision_count(codes)}")
        top = int(result.codes[:, :levels].max())
        expect(top < k, f"repaired code {top} is outside [0, {k})")
        expect(torch.equal(result.codes[:, : levels - 1], codes[:, : levels - 1]),
               "repair changed a level other than the last")
        # Many more copies of one vector than K: repair needs (and uses) the extra level.
        many = x[:1].repeat(k + 3, 1)
        crowded = make_unique(fitted.encode(many), codebook_size=k, distances_last_level=None)
        expect(collision_count(crowded.codes) == 0, f"{k + 3} copies of one vector still collide")
        expect(crowded.extra_level_used, f"{k + 3} copies of one vector did not use the extra level")

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
            expect(tuple(dist.shape) == (n, cfg.codebook_size),
                   f"code_distances at level {level} has shape {tuple(dist.shape)}, "
                   f"expected {(n, cfg.codebook_size)}")
            expect(bool(torch.isfinite(dist).all()), f"code_distances at level {level} is not finite")
            expect(float(dist.min()) >= -1e-4, f"code_distances at level {level} is negative: "
                                               f"{float(dist.min()):.6g}")
        plan = sinkhorn(dist, epsilon=0.1, n_iter=3000, tol=1e-7)
        expect(bool(torch.isfinite(plan).all()) and float(plan.min()) >= 0,
               "Sinkhorn plan on the quantizer's distances is not finite and non-negative")
        torch.testing.assert_close(plan.sum(1), torch.full((n,), 1.0 / n), rtol=1e-3, atol=1e-6)
        torch.testing.assert_close(plan.sum(0), torch.full((cfg.codebook_size,), 1.0 / cfg.codebook_size),
                                   rtol=1e-3, atol=1e-6)

    def test_bad_input_is_refused(self, fitted: Quantizer) -> None:
        x = self.train_data(seed=1)[:5]
        bad = x.clone()
        bad[2, 0] = float("nan")
        infinite = x.clone()
        infinite[1, 1] = float("inf")
        cases = {"NaN": bad, "inf": infinite, "wrong dimension": x[:, :-1], "no rows": x[:0], "1-D": x[0]}
        for label, wrong in cases.items():
            _refused(lambda wrong=wrong: fitted.encode(wrong), f"encode of bad input ({label})")
        for label, wrong in (("NaN", bad), ("no rows", x[:0])):
            _refused(lambda wrong=wrong: self.make_quantizer().fit(wrong), f"fit on bad input ({label})")
        _refused(lambda: self.make_quantizer().encode(x), "encode before fit")
        codes = fitted.encode(x)
        _refused(lambda: fitted.decode(codes + fitted.config.codebook_size), "decode of codes out of range")

    def test_fewer_vectors_than_codes(self) -> None:
        cfg = self.make_config()
        n = max(1, cfg.codebook_size // 2)
        quantizer = self.make_quantizer()
        x = conformance_data(n, self.dim, seed=3)
        quantizer.fit(x)
        self.set_eval(quantizer)
        codes = quantizer.encode(x)
        expect(tuple(codes.shape) == (n, cfg.levels), f"codes shape {tuple(codes.shape)} for {n} vectors")
        expect(int(codes.max()) < cfg.codebook_size, f"code {int(codes.max())} >= K = {cfg.codebook_size}")
        left = collision_count(make_unique_for_quantizer(quantizer, x, codes).codes)
        expect(left == 0, f"{left} collisions left after repair with fewer vectors ({n}) than codes")


def _refused(call: Any, what: str) -> None:
    """Raise ``AssertionError`` unless ``call()`` raises a ``UlmrecError`` / ``ValueError``."""
    try:
        call()
    except (UlmrecError, ValueError):
        return
    raise AssertionError(f"{what} was accepted; expected a UlmrecError or ValueError")


def _mean_error(recon: torch.Tensor, x: torch.Tensor) -> float:
    """``mean_i ||recon_i − x_i||²``."""
    return float((recon.detach() - x).pow(2).sum(1).mean())


def _diff_rows(a: torch.Tensor, b: torch.Tensor) -> str:
    """The first row where two code matrices differ, for failure messages."""
    if a.shape != b.shape:
        return f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
    rows = torch.nonzero((a != b).any(dim=1)).flatten()
    if not rows.numel():
        return "identical"
    i = int(rows[0])
    return f"{rows.numel()} row(s) differ, first row {i}: {a[i].tolist()} vs {b[i].tolist()}"
