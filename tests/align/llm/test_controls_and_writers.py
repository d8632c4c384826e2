"""Issue 26 on the LLM commands: a model tuned on controlled codes ranks with the same control (item 4);
`align build/rank/train` never write over or into their inputs (item 5); work-multiplying and
score-scaling options are bounded (items 10, 12); an index fitted on every user is refused under
`--cold-share` (item 12); `--permutations` says how many letter orders it used (item 12)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec
from support.cli import one_line_error, run_ulmrec


def _one_line_error(*args: str | Path) -> str:
    return one_line_error(run_ulmrec(*args))


@pytest.fixture(scope="module")
def permuted(pipeline: Pipeline, tiny_llm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model tuned on codes shuffled with seed 1000 (`align build --index-permute 1000`)."""
    root = tmp_path_factory.mktemp("permuted")
    ulmrec("align", "build", "--data", pipeline.data, "--index", pipeline.index, "--candidates",
           pipeline.candidates, "--out", root / "A", "--model", tiny_llm, "--tasks", "next_item",
           "--max-users", "8", "--n-candidates", "5", "--history-items", "3", "--index-permute", "1000",
           "--no-progress")
    ulmrec("align", "train", "--samples", root / "A", "--model", tiny_llm, "--out", root / "T",
           "--max-steps", "1", "--valid-users", "2", "--no-progress")
    return root / "T"


def test_a_model_tuned_on_permuted_codes_ranks_only_with_the_same_permutation(
        pipeline: Pipeline, permuted: Path, tmp_path: Path) -> None:
    args = ["align", "rank", "--model", permuted, "--data", pipeline.data, "--candidates",
            pipeline.candidates, "--index", pipeline.index, "--limit", "2", "--no-progress"]
    for control, expected in (([], "--index-permute 1000 (asked: none)"),
                              (["--index-permute", "5"], "--index-permute 1000 (asked: 5)"),
                              (["--index-random", "5"], "--index-random none (asked: 5)")):
        line = _one_line_error(*args, *control, "--out", tmp_path / "r.jsonl")
        assert "it was made with --index-permute 1000" in line      # every setting that differs is named
        assert expected in line
        assert "--any-index to use it anyway" in line
        assert not (tmp_path / "r.jsonl").exists()
    ulmrec(*args, "--index-permute", "1000", "--permutations", "1000000", "--out", tmp_path / "same.jsonl")
    done = run_ulmrec(*args, "--any-index", "--permutations", "1000000", "--out", tmp_path / "any.jsonl",
                      check=True)
    assert "5 letter orders" in done.stderr            # the orders it used: 5 candidates, 5 cyclic orders
    assert "1000000" not in done.stderr


def test_align_writers_refuse_to_write_over_or_into_their_inputs(pipeline: Pipeline, tiny_llm: Path,
                                                                 tmp_path: Path) -> None:
    candidates = tmp_path / "c.jsonl"
    candidates.write_bytes(pipeline.candidates.read_bytes())
    before = candidates.read_bytes()
    line = _one_line_error("align", "rank", "--model", tiny_llm, "--data", pipeline.data, "--candidates",
                           candidates, "--out", candidates, "--force", "--no-progress")
    assert f"--out {candidates} is the input --candidates" in line
    assert candidates.read_bytes() == before
    data_files = sorted(p.name for p in pipeline.data.iterdir())
    line = _one_line_error("align", "build", "--data", pipeline.data, "--out", pipeline.data, "--force",
                           "--model", tiny_llm, "--no-progress")
    assert "is the input --data" in line
    line = _one_line_error("align", "build", "--data", pipeline.data, "--out", pipeline.index / "samples",
                           "--index", pipeline.index, "--model", tiny_llm, "--no-progress")
    assert "lies inside the input --index" in line
    assert sorted(p.name for p in pipeline.data.iterdir()) == data_files
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "keep.txt").write_text("x", encoding="utf-8")
    line = _one_line_error("align", "train", "--samples", samples, "--model", tiny_llm, "--out",
                           samples / "model", "--force")
    assert "lies inside the input --samples" in line
    assert [p.name for p in samples.iterdir()] == ["keep.txt"]


def test_options_that_multiply_work_or_scale_scores_are_bounded(pipeline: Pipeline, tiny_llm: Path,
                                                                tmp_path: Path) -> None:
    line = _one_line_error("align", "build", "--data", pipeline.data, "--out", tmp_path / "s", "--model",
                           tiny_llm, "--task-weight", "rating=1e9", "--no-progress")
    assert "--task-weight rating must be a number from 0 to 100" in line
    assert not (tmp_path / "s").exists()
    line = _one_line_error("align", "rank", "--model", tiny_llm, "--data", pipeline.data, "--candidates",
                           pipeline.candidates, "--out", tmp_path / "r.jsonl", "--fuse-retriever", "1.7e308")
    assert "--fuse-retriever must be a number from 0 to 1e+06" in line


def test_cold_share_refuses_an_index_fitted_on_every_user(pipeline: Pipeline, tiny_llm: Path,
                                                          tmp_path: Path) -> None:
    """The session's index was built without --cold-share: the users align build would hold out as new were
    in its fit."""
    line = _one_line_error("align", "build", "--data", pipeline.data, "--index", pipeline.index,
                           "--candidates", pipeline.candidates, "--out", tmp_path / "s", "--model", tiny_llm,
                           "--cold-share", "0.3", "--tasks", "next_item", "--max-users", "8", "--no-progress")
    assert "the index holds out no users as cold-start (share 0, seed 0) but 0.3 of them" in line
