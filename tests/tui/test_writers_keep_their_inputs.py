"""Every writer refuses an output that is, holds or lies inside one of its inputs, before it reads or
writes anything, in one line, even with --force (issue 26, item 5): the input stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import one_line_error, run_console


def _one_line_error(*args: object) -> str:
    return one_line_error(run_console("ulmrec", *map(str, args), timeout=120))


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "keep.json").write_text('{"keep": true}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("case", ["user-vectors", "user-vectors-data", "train", "tune", "eval-metrics",
                                  "eval-compare", "users", "report"])
def test_a_writer_refuses_to_write_over_or_into_its_input(tmp_path: Path, case: str) -> None:
    data, retriever = _folder(tmp_path / "data"), _folder(tmp_path / "retriever")
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"user_id": 1, "target": 2, "ranked": [2]}\n', encoding="utf-8")
    run = _folder(tmp_path / "runs" / "x-s0")
    (run / "rank").mkdir()
    argv, hit, how = {
        "user-vectors": (["retrieve", "user-vectors", "--data", data, "--retriever", retriever, "--out",
                          retriever, "--force"], retriever, "is the input --retriever"),
        "user-vectors-data": (["retrieve", "user-vectors", "--data", data, "--retriever", retriever, "--out",
                               data / "vectors", "--force"], data, "lies inside the input --data"),
        "train": (["retrieve", "train", "--data", data, "--out", data, "--force"], data,
                  "is the input --data"),
        "tune": (["retrieve", "tune", "--data", data, "--out", tmp_path, "--force"], data,
                 "holds the input --data"),
        "eval-metrics": (["eval", "metrics", predictions, "--out", predictions], predictions,
                         "is the input PREDICTIONS"),
        "eval-compare": (["eval", "compare", predictions, predictions, "--out", predictions], predictions,
                         "is the input A"),
        "users": (["data", "users", data, "--out", data / "texts" / "u.jsonl", "--force"], data,
                  "lies inside the input FOLDER"),
        "report": (["experiment", "report", run, "--out", run / "report"], run,
                   "lies inside the input RUNS[0]"),
    }[case]
    before = {p: p.read_bytes() for p in sorted(hit.rglob("*") if hit.is_dir() else [hit]) if p.is_file()}
    line = _one_line_error(*argv)
    assert how in line
    assert "choose another --out" in line
    after = {p: p.read_bytes() for p in sorted(hit.rglob("*") if hit.is_dir() else [hit]) if p.is_file()}
    assert after == before
