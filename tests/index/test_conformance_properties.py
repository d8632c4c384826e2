"""The conformance class catches a useless quantizer, and Sinkhorn prices agree with the balanced assignment.

A quantizer that returns all-zero codes and zero reconstructions passed every conformance test before the
data-, level- and codebook-size-drawn properties were added; here it must fail the properties about what its
codes say of the input (reconstruction, every level lowering the error, decode reading every level), with
messages that show the values.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from ulmrec_index.quantizers import FitReport, QuantizerConfig, QuantizerError
from ulmrec_index.quantizers.registry import register_quantizer, unregister_quantizer
from ulmrec_index.sinkhorn import balanced_assign, balanced_prices
from ulmrec_index.testing import QuantizerConformance


class ZeroConfig(QuantizerConfig):
    kind: Literal["zeroq"] = Field(default="zeroq", description="Registry key.")


class ZeroQuantizer:
    """Degenerate but well-behaved: valid shapes, deterministic, refuses bad input — and ignores its input."""

    def __init__(self, *, config: ZeroConfig) -> None:
        self.config = config
        self.dim: int | None = None

    def _check(self, x: Any) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[0] == 0 or (self.dim is not None and x.shape[1] != self.dim):
            raise QuantizerError(f"bad shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise QuantizerError("NaN/inf")
        return x.float()

    def fit(self, x: Any) -> FitReport:
        self.dim = self._check(x).shape[1]
        return FitReport()

    def encode(self, x: Any) -> torch.Tensor:
        if self.dim is None:
            raise QuantizerError("not fitted")
        return torch.zeros(self._check(x).shape[0], self.config.levels, dtype=torch.int64)

    def decode(self, codes: Any) -> torch.Tensor:
        codes = torch.as_tensor(codes)
        if int(codes.max()) >= self.config.codebook_size:
            raise QuantizerError("codes out of range")
        return torch.zeros(codes.shape[0], self.dim or 1)

    def code_distances(self, x: Any, level: int, prefix: Any) -> torch.Tensor:
        return torch.zeros(self._check(x).shape[0], self.config.codebook_size)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"dim": torch.tensor(self.dim or 0)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.dim = int(state["dim"])


class ZeroConformance(QuantizerConformance):
    """Not collected (no ``Test`` prefix): run by hand below."""

    config: ClassVar[dict[str, Any]] = {"kind": "zeroq", "levels": 2, "codebook_size": 8}


@pytest.fixture
def zero_registered() -> Iterator[None]:
    register_quantizer("zeroq", ZeroConfig, lambda cfg: ZeroQuantizer(config=cfg))
    yield
    unregister_quantizer("zeroq")


def _run_all(suite: QuantizerConformance) -> dict[str, BaseException | None]:
    """Every ``test_*`` of the class on ``suite``: name -> the exception it raised (None: passed; a skip is
    recorded as its ``pytest.skip.Exception``, so it cannot skip this test)."""
    fixtures = {"fitted": suite.fit_default(), "fitted_by_levels": suite.fit_by_levels()}
    outcome: dict[str, BaseException | None] = {}
    for name, method in inspect.getmembers(suite, predicate=inspect.ismethod):
        if not name.startswith("test_"):
            continue
        wanted = {k: v for k, v in fixtures.items() if k in inspect.signature(method).parameters}
        try:
            method(**wanted)
            outcome[name] = None
        except (Exception, pytest.skip.Exception) as exc:
            outcome[name] = exc
    return outcome


@pytest.mark.usefixtures("zero_registered")
def test_an_all_zero_quantizer_fails_the_conformance_class() -> None:
    outcome = _run_all(ZeroConformance())
    failed = {name for name, exc in outcome.items()
              if exc is not None and not isinstance(exc, pytest.skip.Exception)}
    skipped = {name for name, exc in outcome.items() if isinstance(exc, pytest.skip.Exception)}
    # the properties about what the code says of the input catch it; every other check is blind to it
    assert failed == {"test_reconstruction_beats_the_mean_baseline",
                      "test_every_level_strictly_lowers_the_error",
                      "test_decode_depends_on_every_level"}, outcome
    assert skipped == {"test_decode_is_the_sum_of_the_chosen_codewords"}  # its state holds no codewords
    message = str(outcome["test_reconstruction_beats_the_mean_baseline"])
    assert "reconstruction error " in message
    assert "of the mean-vector baseline" in message
    assert "must be <= 0.5" in message
    assert "does not lower the error on unstructured data" in str(
        outcome["test_every_level_strictly_lowers_the_error"])
    assert "decode ignores level 0" in str(outcome["test_decode_depends_on_every_level"])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(2, 400), k=st.integers(2, 64), seed=st.integers(0, 2**16),
       spread=st.sampled_from([0.1, 1.0, 10.0]))
def test_balanced_prices_agree_with_balanced_assign(n: int, k: int, seed: int, spread: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen) * spread
    codewords = torch.randn(k, 4, generator=gen)
    dist = torch.cdist(x, codewords) ** 2
    prices = balanced_prices(dist)
    priced = (dist - prices).argmin(1)
    assigned = balanced_assign(dist)
    # equal except at float near-ties: a row may differ only where its two costs tie to rounding
    differ = torch.nonzero(priced != assigned).flatten()
    rows = torch.arange(n)
    gap = ((dist - prices)[rows, assigned] - (dist - prices)[rows, priced])[differ]
    scale = float(dist.abs().max()) + 1.0
    assert differ.numel() <= max(1, n // 100), f"{differ.numel()} of {n} rows differ (n={n}, K={k})"
    assert bool((gap.abs() <= 1e-4 * scale).all()), f"rows {differ.tolist()} differ by {gap.tolist()}"


@pytest.mark.parametrize("kind", ["rqkmeans", "rqvae", "faiss"])
def test_quantizers_take_numpy_as_well_as_torch(kind: str) -> None:
    if kind == "faiss":
        pytest.importorskip("faiss")
    from ulmrec_index.quantizers import create_quantizer
    from ulmrec_index.testing import conformance_data

    x = conformance_data(200, 8, seed=4)
    config = {"kind": kind, "levels": 2, "codebook_size": 8, **({"min_steps": 40} if kind == "rqvae" else {})}
    torch.manual_seed(0)
    from_torch = create_quantizer(config)
    from_torch.fit(x)
    torch.manual_seed(0)
    from_numpy = create_quantizer(config)
    from_numpy.fit(x.numpy().astype("float64"))  # any float dtype
    for q in (from_torch, from_numpy):
        if isinstance(q, torch.nn.Module):
            q.eval()
    codes = from_torch.encode(x)
    assert torch.equal(from_numpy.encode(x.numpy()), codes)
    torch.testing.assert_close(from_numpy.decode(codes.numpy()), from_torch.decode(codes))
    torch.testing.assert_close(from_numpy.code_distances(x.numpy(), 1, codes[:, :1].numpy()),
                               from_torch.code_distances(x, 1, codes[:, :1]))
