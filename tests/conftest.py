"""Shared test configuration: the ``slow`` marker gate and the location of the real benchmark data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.cli import OFFLINE_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
for _key, _value in OFFLINE_ENV.items():     # before any test module builds an environment from os.environ
    os.environ.setdefault(_key, _value)
#: Real benchmark data lives beside the checkout (never committed); override with ULMREC_SHARED_DATA.
SHARED_DATA = Path(os.environ.get("ULMREC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (benchmarks and nightly)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny ``LlamaForCausalLM`` (tied embeddings) with a small byte-level BPE tokenizer, as a local
    folder (no hub)."""
    from ulmrec_align.models.testing import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llm") / "model")


@pytest.fixture(scope="session")
def beauty_dir() -> Path:
    """The real Amazon Beauty RecBole files; the test is skipped with a clear reason where they are absent."""
    path = SHARED_DATA / "amazon-beauty"
    if not (path / "beauty.inter").is_file():
        pytest.skip(f"real benchmark data not found at {path} (set ULMREC_SHARED_DATA to its parent folder)")
    return path
