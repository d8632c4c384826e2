"""faiss ResidualQuantizer wrapper: the shared conformance suite, plus the missing-extra error."""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

import pytest
import torch

from ulmrec_index.quantizers import QuantizerError, create_quantizer
from ulmrec_index.testing import QuantizerConformance, conformance_data

pytest.importorskip("faiss", reason="the faiss extra is not installed (pip install 'ulmrec-index[faiss]')")


class TestFaissConformance(QuantizerConformance):
    config: ClassVar[dict[str, Any]] = {
        "kind": "faiss", "levels": 2, "codebook_size": 8, "max_beam_size": 1, "niter": 10}
    error_rtol = 0.02


class TestFaissBeamConformance(QuantizerConformance):
    # faiss's defaults: beam 5, progressive-dimension training
    config: ClassVar[dict[str, Any]] = {"kind": "faiss", "levels": 2, "codebook_size": 8}
    error_rtol = 0.05


def test_codebook_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        create_quantizer({"kind": "faiss", "codebook_size": 12})


def test_codes_match_faiss_decode() -> None:
    x = conformance_data(300, 8, seed=2)
    q = create_quantizer({"kind": "faiss", "levels": 3, "codebook_size": 16})
    q.fit(x)
    codes = q.encode(x)
    books = q.state_dict()["codebooks"]  # (L, K, D) tensor, not a faiss blob
    assert tuple(books.shape) == (3, 16, 8)
    manual = sum(books[level][codes[:, level]] for level in range(3))
    torch.testing.assert_close(q.decode(codes), manual, rtol=1e-4, atol=1e-4)


def test_missing_faiss_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_faiss(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "faiss" or name.startswith("faiss."):
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    q = create_quantizer({"kind": "faiss", "levels": 2, "codebook_size": 8})  # creating needs no faiss
    with pytest.raises(QuantizerError, match=r"ulmrec-index\[faiss\]"):
        q.fit(conformance_data(50, 4, seed=0))
