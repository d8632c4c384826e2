"""The quantizer registry, and a THIRD-PARTY quantizer defined here (not in the package) that is registered
through the public API and through a fake ``ulmrec.quantizers`` entry point, and passes the conformance suite.
"""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
import torch
from pydantic import Field

from ulmrec_index.quantizers import (
    FitReport,
    Quantizer,
    QuantizerConfig,
    QuantizerError,
    QuantizerSpec,
    available_quantizers,
    create_quantizer,
    get_quantizer_config_class,
    parse_quantizer_config,
    register_quantizer,
    unregister_quantizer,
)
from ulmrec_index.quantizers import registry as registry_module
from ulmrec_index.quantizers.registry import quantizer_config_adapter
from ulmrec_index.quantizers.rqkmeans import RQKMeansConfig
from ulmrec_index.testing import QuantizerConformance


# ---------------------------------------------------------------- a third-party quantizer (projections)
class ProjectionConfig(QuantizerConfig):
    """Per-level scalar quantization of a random projection of the residual."""

    kind: Literal["projection"] = Field(default="projection", description="Registry key.")
    span: float = Field(default=3.0, gt=0, description="Half-width of the quantized interval, in stds.")


class ProjectionQuantizer:
    """Level l: project the centred residual on its principal direction u_l and round the projection to the
    nearest of K points (0 and a grid on [-span·σ, span·σ]); the codeword is that point times u_l. Residual
    structure: adding a level never moves earlier codes and never increases the error."""

    def __init__(self, *, config: ProjectionConfig) -> None:
        self.config = config
        self.directions: torch.Tensor | None = None  # (L, D)
        self.scales: torch.Tensor | None = None  # (L,)
        self.mean: torch.Tensor | None = None  # (D,)

    def _check(self, x: object) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] == 0:
            raise QuantizerError(f"x must be a non-empty (N, D) tensor/array, got {getattr(x, 'shape', x)}")
        if self.directions is not None and x.shape[1] != self.directions.shape[1]:
            raise QuantizerError("wrong dimension")
        if not bool(torch.isfinite(x).all()):
            raise QuantizerError("x has NaN/inf")
        return x.float()

    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.directions is None or self.scales is None or self.mean is None:
            raise QuantizerError("not fitted")
        return self.directions, self.scales, self.mean

    def _centres(self, level: int) -> torch.Tensor:
        """``(K,)``: 0 (the nearest centre never lengthens the residual) and K-1 points on [-span, span]."""
        k, span = self.config.codebook_size, self.config.span
        grid = torch.cat([torch.zeros(1), torch.linspace(-span, span, k - 1)])
        return grid * self._fitted()[1][level]

    def fit(self, x: torch.Tensor) -> FitReport:
        x = self._check(x)
        levels = self.config.levels
        self.mean = x.mean(0)
        self.directions, self.scales = torch.zeros(levels, x.shape[1]), torch.ones(levels)
        residual = x - self.mean
        for level in range(levels):  # the principal direction of what earlier levels left over
            if float(residual.abs().max()) > 0:
                direction = torch.linalg.svd(residual, full_matrices=False).Vh[0]
            else:
                gen = torch.Generator().manual_seed(self.config.seed * 100 + level)
                direction = torch.nn.functional.normalize(torch.randn(x.shape[1], generator=gen), dim=0)
            self.directions[level] = direction * torch.sign(direction[direction.abs().argmax()])
            proj = residual @ self.directions[level]
            self.scales[level] = proj.std() if x.shape[0] > 1 and float(proj.std()) > 0 else 1.0
            residual -= self._centres(level)[self._bins(proj, level)][:, None] * self.directions[level]
        return FitReport(losses=[float(residual.pow(2).sum(1).mean())])

    def _bins(self, proj: torch.Tensor, level: int) -> torch.Tensor:
        return (proj[:, None] - self._centres(level)[None, :]).abs().argmin(1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        directions, _, mean = self._fitted()
        residual = self._check(x) - mean
        codes = torch.empty(residual.shape[0], self.config.levels, dtype=torch.int64)
        for level in range(self.config.levels):
            codes[:, level] = self._bins(residual @ directions[level], level)
            residual -= self._centres(level)[codes[:, level]][:, None] * directions[level]
        return codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        directions, _, mean = self._fitted()
        if codes.ndim != 2 or int(codes.max()) >= self.config.codebook_size or int(codes.min()) < 0:
            raise QuantizerError("codes out of range")
        out = mean.expand(codes.shape[0], -1).clone()
        for level in range(codes.shape[1]):
            out += self._centres(level)[codes[:, level]][:, None] * directions[level]
        return out

    def code_distances(self, x: torch.Tensor, level: int, prefix: torch.Tensor) -> torch.Tensor:
        directions, _, mean = self._fitted()
        residual = self._check(x) - mean
        for j in range(level):
            residual -= self._centres(j)[prefix[:, j]][:, None] * directions[j]
        words = self._centres(level)[:, None] * directions[level]  # (K, D)
        return torch.cdist(residual, words) ** 2

    def state_dict(self) -> dict[str, torch.Tensor]:
        directions, scales, mean = self._fitted()
        return {"directions": directions.clone(), "scales": scales.clone(), "mean": mean.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.directions, self.scales = state["directions"].clone(), state["scales"].clone()
        self.mean = state["mean"].clone()


SPEC = QuantizerSpec("projection", ProjectionConfig, lambda cfg: ProjectionQuantizer(config=cfg))


@pytest.fixture
def projection_registered() -> Iterator[None]:
    register_quantizer("projection", ProjectionConfig, SPEC.factory)
    yield
    unregister_quantizer("projection")


class TestThirdPartyConformance(QuantizerConformance):
    """The same conformance suite, on a quantizer the package knows nothing about."""

    config: ClassVar[dict[str, Any]] = {"kind": "projection", "levels": 2, "codebook_size": 8}
    error_rtol = 0.0  # exact residual structure
    # one direction and a coarse grid per level: a weak quantizer, but far better than ignoring the input
    level_choices = (3, 4)
    max_error_ratio = 0.75

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _register(cls) -> Iterator[None]:
        register_quantizer("projection", ProjectionConfig, SPEC.factory)
        yield
        unregister_quantizer("projection")

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, _register: None) -> Quantizer:
        return cls().fit_default()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted_by_levels(cls, _register: None) -> dict[int, Quantizer]:
        return cls().fit_by_levels()

    def expected_decode(self, quantizer: Quantizer, codes: torch.Tensor) -> torch.Tensor:
        """Its codewords: the mean, plus per level the chosen grid point times the level's direction."""
        state = quantizer.state_dict()
        k, span = quantizer.config.codebook_size, 3.0
        grid = torch.cat([torch.zeros(1), torch.linspace(-span, span, k - 1)])
        out = state["mean"].expand(codes.shape[0], -1).clone()
        for level in range(codes.shape[1]):
            out += (grid * state["scales"][level])[codes[:, level]][:, None] * state["directions"][level]
        return out


# ---------------------------------------------------------------- registry behaviour
def test_builtins_are_available() -> None:
    assert {"rqvae", "rqkmeans", "faiss"} <= set(available_quantizers())
    assert available_quantizers() == sorted(available_quantizers())


def test_config_is_parsed_from_a_dict_by_kind() -> None:
    cfg = parse_quantizer_config({"kind": "rqkmeans", "levels": 3})
    assert isinstance(cfg, RQKMeansConfig)
    assert cfg.levels == 3
    assert parse_quantizer_config({}).kind == "rqvae"  # the default kind
    assert parse_quantizer_config(cfg, levels=2).levels == 2
    assert get_quantizer_config_class("rqkmeans") is RQKMeansConfig
    adapter = quantizer_config_adapter()
    assert isinstance(adapter.validate_python({"kind": "rqkmeans", "n_iter": 3}), RQKMeansConfig)


def test_unknown_kind_lists_the_available_ones() -> None:
    with pytest.raises(QuantizerError, match=r"unknown quantizer kind 'nope'; available: .*rqkmeans.*rqvae"):
        create_quantizer({"kind": "nope"})


def test_bad_config_field_is_a_validation_error() -> None:
    with pytest.raises(ValueError, match="levels"):
        parse_quantizer_config({"kind": "rqkmeans", "levels": 0})
    with pytest.raises(ValueError, match="extra"):
        parse_quantizer_config({"kind": "rqkmeans", "levels_typo": 2})


def test_register_as_decorator_and_conflicts(projection_registered: None) -> None:
    assert "projection" in available_quantizers()
    register_quantizer("projection", ProjectionConfig, SPEC.factory)  # the same again: a no-op
    with pytest.raises(QuantizerError, match="already registered"):
        register_quantizer("projection", ProjectionConfig, lambda cfg: ProjectionQuantizer(config=cfg))

    class OtherConfig(ProjectionConfig):
        kind: Literal["other-proj"] = Field(default="other-proj", description="Registry key.")  # type: ignore[assignment]

    @register_quantizer("other-proj", OtherConfig)
    def make_other(cfg: OtherConfig) -> ProjectionQuantizer:
        return ProjectionQuantizer(config=cfg)

    try:
        assert isinstance(create_quantizer({"kind": "other-proj"}), ProjectionQuantizer)
    finally:
        unregister_quantizer("other-proj")


def test_kind_must_match_the_config() -> None:
    with pytest.raises(QuantizerError, match="must default to 'mismatch'"):
        register_quantizer("mismatch", ProjectionConfig, SPEC.factory)
    with pytest.raises(QuantizerError, match="lowercase"):
        register_quantizer("Projection", ProjectionConfig, SPEC.factory)


def test_entry_point_plugin_is_discovered_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin package on sys.path with a dist-info declaring the entry point; no registry call by hand."""
    pkg = tmp_path / "proj_plugin"
    pkg.mkdir()
    this_file = Path(__file__).resolve()
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        import importlib.util
        import sys
        _spec = importlib.util.spec_from_file_location("_third_party_quant", {str(this_file)!r})
        _mod = importlib.util.module_from_spec(_spec)
        sys.modules["_third_party_quant"] = _mod
        _spec.loader.exec_module(_mod)
        SPEC = _mod.SPEC
    """))
    dist = tmp_path / "proj_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: proj-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ulmrec.quantizers]\nprojection = proj_plugin:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "_entry_points_loaded", False)
    found = [ep.name for ep in importlib.metadata.entry_points(group="ulmrec.quantizers")]
    assert "projection" in found
    try:
        q = create_quantizer({"kind": "projection", "levels": 2, "codebook_size": 4})
        assert type(q).__name__ == "ProjectionQuantizer"
        assert "projection" in available_quantizers()
    finally:
        unregister_quantizer("projection")
        sys.modules.pop("proj_plugin", None)
        sys.modules.pop("_third_party_quant", None)


def test_broken_entry_point_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_module_xyz:SPEC",
                                           group="ulmrec.quantizers")

    def fake_entry_points(**kwargs: Any) -> list[importlib.metadata.EntryPoint]:
        return [broken] if kwargs.get("group") == "ulmrec.quantizers" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry_module, "_entry_points_loaded", False)
    with pytest.warns(UserWarning, match="skipping quantizer entry point 'broken'"):
        kinds = available_quantizers()
    assert "broken" not in kinds
    assert "rqvae" in kinds
