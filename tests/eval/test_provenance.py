"""``ulmrec_eval.runtime.provenance``: a file of a pipeline run is used only while it is what its run was
made from (its stage records, written here as plain JSON as the pipeline writes them); ``eval compare``
checks it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulmrec_eval.cli import app
from ulmrec_eval.runtime.artifacts import sha256_file
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.provenance import check_made_from

ROWS = [{"user_id": f"u{i}", "target": 10 + i % 3, "candidates": [10, 11, 12], "scores": [0.3, 0.2, 0.1]}
        for i in range(12)]


def _stage(folder: Path, stage: str, output: str, *, made_from: dict[str, str], output_hash: str,
           status: str = "done") -> None:
    file = folder / output
    stat = file.stat()
    record = {"stage": stage, "run": folder.parent.name, "status": status, "output_hash": output_hash,
              "input_hashes": {f"stage:{dep}": h for dep, h in made_from.items()},
              "output_files": {output: {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                        "sha256": sha256_file(file)}}}
    (folder / "stage.json").write_text(json.dumps(record), encoding="utf-8")


def _run(root: Path, name: str) -> Path:
    """A run whose rank stage was made from its retrieve stage (hash R1)."""
    run = root / name
    for stage, output in (("retrieve", "retriever/candidates.jsonl"), ("rank", "predictions.jsonl")):
        (run / stage / output).parent.mkdir(parents=True, exist_ok=True)
        (run / stage / output).write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    _stage(run / "retrieve", "retrieve", "retriever/candidates.jsonl", made_from={}, output_hash="R1")
    _stage(run / "rank", "rank", "predictions.jsonl", made_from={"retrieve": "R1"}, output_hash="K1")
    return run


def test_a_file_outside_a_run_or_of_a_consistent_run_passes(tmp_path: Path) -> None:
    loose = tmp_path / "loose.jsonl"
    loose.write_text("{}\n", encoding="utf-8")
    check_made_from(loose)
    run = _run(tmp_path, "a")
    check_made_from(run / "rank" / "predictions.jsonl")
    check_made_from(run / "retrieve" / "retriever" / "candidates.jsonl")


def test_a_rerun_upstream_stage_an_edited_file_or_an_unfinished_stage_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, "a")
    predictions = run / "rank" / "predictions.jsonl"
    _stage(run / "retrieve", "retrieve", "retriever/candidates.jsonl", made_from={}, output_hash="R2")
    with pytest.raises(InputError, match=r"stage rank of run a was made from another retrieve than "
                                         r".*a/retrieve holds now \(retrieve was rerun since\)"):
        check_made_from(predictions)
    check_made_from(run / "retrieve" / "retriever" / "candidates.jsonl")   # the retriever's own file: fine
    other = _run(tmp_path, "b")
    with (other / "rank" / "predictions.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(ROWS[0]) + "\n")
    with pytest.raises(InputError, match=r"changed since stage rank of run b wrote it"):
        check_made_from(other / "rank" / "predictions.jsonl")
    third = _run(tmp_path, "c")
    _stage(third / "rank", "rank", "predictions.jsonl", made_from={"retrieve": "R1"}, output_hash="K1",
           status="running")
    with pytest.raises(InputError, match=r"which is running, not done"):
        check_made_from(third / "rank" / "predictions.jsonl")


def test_eval_compare_refuses_predictions_whose_reused_retriever_was_rerun(tmp_path: Path) -> None:
    """cold/retrieve links to cb/retrieve; cb reruns it: comparing cold's LLM with its retriever order is
    then comparing with candidates it never ranked."""
    cb, cold = _run(tmp_path, "cb"), _run(tmp_path, "cold")
    llm, order = cold / "rank" / "predictions.jsonl", cold / "retrieve" / "retriever" / "candidates.jsonl"
    runner = CliRunner()
    assert runner.invoke(app, ["compare", str(order), str(llm)]).exit_code == 0
    for entry in sorted((cold / "retrieve").rglob("*"), reverse=True):
        entry.rmdir() if entry.is_dir() else entry.unlink()
    (cold / "retrieve").rmdir()
    os.symlink("../cb/retrieve", cold / "retrieve")
    assert runner.invoke(app, ["compare", str(order), str(llm)]).exit_code == 0
    _stage(cb / "retrieve", "retrieve", "retriever/candidates.jsonl", made_from={}, output_hash="R2")
    result = runner.invoke(app, ["compare", str(order), str(llm)])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert "stage rank of run cold was made from another retrieve" in str(result.exception)
    assert "(a link to " in str(result.exception)


def test_an_artifact_is_used_with_the_settings_it_was_made_with() -> None:
    from ulmrec_eval.runtime.provenance import check_made_with

    check_made_with({"--index-permute": 1000, "--index-random": None}, {"--index-permute": 1000},
                    artifact="m")
    with pytest.raises(InputError, match=r"^m: it was made with --index-permute 1000 \(asked: none\): give "
                                         r"the same settings, or --any-index to use it anyway$"):
        check_made_with({"--index-permute": 1000}, {"--index-permute": None}, artifact="m",
                        escape="--any-index")
    with pytest.raises(InputError, match=r"--index-permute none \(asked: 5\); "
                                         r"--index-random 5 \(asked: none\)"):
        check_made_with({"--index-random": 5}, {"--index-permute": 5}, artifact="m")
