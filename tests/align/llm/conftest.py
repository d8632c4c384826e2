"""A small real pipeline for the LLM-half tests: synthetic Amazon data → prepared → user index → LRURec
candidates, built once per test session with the real commands; plus tiny local LLMs (no hub)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import run_ulmrec


@dataclass(frozen=True)
class Pipeline:
    data: Path
    index: Path
    candidates: Path
    root: Path


def ulmrec(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real ``ulmrec`` command; fail the test with its stderr."""
    return run_ulmrec(*args, check=True)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    root = tmp_path_factory.mktemp("pipeline")
    ulmrec("data", "synthetic", "--out", root / "raw", "--users", "60", "--items", "60", "--seed", "3")
    ulmrec("data", "prepare", "--source", "amazon", "--path", root / "raw", "--out", root / "data")
    ulmrec("data", "users", root / "data", "--out", root / "users.jsonl")
    ulmrec("index", "build", "--users", root / "users.jsonl", "--out", root / "index", "--levels", "3",
           "--codebook-size", "8", "--cache-dir", root / ".cache")
    ulmrec("retrieve", "train", "--data", root / "data", "--out", root / "retrieve", "--epochs", "3",
           "--no-progress")
    return Pipeline(data=root / "data", index=root / "index",
                    candidates=root / "retrieve" / "candidates.jsonl", root=root)
