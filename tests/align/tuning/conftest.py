"""Fixtures for the tuning tests: a tiny random Llama model folder (offline, no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmrec_align.models.testing import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ``LlamaForCausalLM`` (tied embeddings) with a small byte-level BPE tokenizer."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def tiny_llama_untied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, with a separate ``lm_head`` (untied), for the added-token tests."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama-untied") / "model", tie_word_embeddings=False)
