"""Shared by the LLM benchmarks: the upstream stages (data → users → index → retrieve) built once with the
real ``ulmrec`` commands into ``runs/<name>/`` and reused when already there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ULMREC_SHARED_DATA", ROOT.parent / "shared" / "data"))


@dataclass(frozen=True)
class Upstream:
    root: Path
    data: Path
    index: Path
    candidates: Path


def ulmrec(*args: object, quiet: bool = True) -> float:
    """Run ``ulmrec ARGS`` (this interpreter's environment); returns the seconds it took; fails loudly."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ulmrec_app.main", *map(str, args)], env=env, text=True,
                          capture_output=quiet, check=False)
    if proc.returncode != 0:
        sys.exit(f"ulmrec {' '.join(map(str, args))} failed:\n{proc.stderr if quiet else ''}")
    return time.perf_counter() - start


def synthetic_upstream(root: Path, *, users: int = 300, items: int = 150, seed: int = 0,
                       retriever_epochs: int = 40, signal: str = "reviews") -> Upstream:
    """The built-in synthetic set (sequential signal, hidden traits in the reviews with ``signal="reviews"``)
    through the upstream stages."""
    up = Upstream(root=root, data=root / "data", index=root / "index",
                  candidates=root / "retrieve" / "candidates.jsonl")
    if not (root / "raw").is_dir():
        ulmrec("data", "synthetic", "--out", root / "raw", "--users", users, "--items", items, "--seed", seed,
               "--signal", signal)
    _rest(up, source=("amazon", root / "raw"), retriever_epochs=retriever_epochs,
          index_args=("--levels", 3, "--codebook-size", 16))
    return up


def beauty_upstream(root: Path, *, retriever_minutes: float = 10.0) -> Upstream:
    """The real Amazon Beauty (RecBole files in ../shared/data) through the upstream stages."""
    beauty = SHARED / "amazon-beauty"
    if not (root / "data" / "manifest.json").is_file() and not (beauty / "beauty.inter").is_file():
        sys.exit(f"Amazon Beauty not found at {beauty} (set ULMREC_SHARED_DATA)")
    up = Upstream(root=root, data=root / "data", index=root / "index",
                  candidates=root / "retrieve" / "candidates.jsonl")
    _rest(up, source=("recbole", beauty), retriever_minutes=retriever_minutes)
    return up


def _rest(up: Upstream, *, source: tuple[str, Path], retriever_epochs: int | None = None,
          retriever_minutes: float | None = None, index_args: tuple[object, ...] = ()) -> None:
    if not (up.data / "manifest.json").is_file():
        ulmrec("data", "prepare", "--source", source[0], "--path", source[1], "--out", up.data)
    users = up.root / "users.jsonl"
    if not users.is_file():
        ulmrec("data", "users", up.data, "--out", users)
    if not (up.index / "index.json").is_file():
        ulmrec("index", "build", "--users", users, "--out", up.index, "--cache-dir", up.root / ".cache",
               *index_args)
    if not up.candidates.is_file():
        budget = (["--epochs", retriever_epochs] if retriever_epochs else []) + \
                 (["--max-minutes", retriever_minutes] if retriever_minutes else [])
        ulmrec("retrieve", "train", "--data", up.data, "--out", up.candidates.parent, "--no-progress",
               *budget)
