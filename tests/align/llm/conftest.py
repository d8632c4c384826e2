"""A small real pipeline for the LLM-half tests: synthetic Amazon data → prepared → user index → LRURec
candidates, built once per test session with the real commands; plus tiny local LLMs (no hub)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pipeline:
    data: Path
    index: Path
    candidates: Path
    root: Path


def ulmrec(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real ``ulmrec`` command (in this interpreter's environment); fail the test with its stderr."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "ulmrec_app.main", *map(str, args)], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"ulmrec {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


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


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama with a small byte-level (GPT-2-style) BPE tokenizer, as a local folder."""
    from ulmrec_align.models.testing import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
