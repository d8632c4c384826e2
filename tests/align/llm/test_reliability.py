"""Defects that gave silent wrong results (issue 15): ranking a tuned model with another index, two
`align rank` runs writing the same file, duplicate candidate ids in predictions, a damaged adapter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec
from support.cli import run_ulmrec

from ulmrec_eval.runtime.artifacts import folder_lock


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_ulmrec(*args)


@pytest.fixture(scope="module")
def tuned_with_index(pipeline: Pipeline, tiny_llm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tuned")
    ulmrec("align", "build", "--data", pipeline.data, "--index", pipeline.index, "--candidates",
           pipeline.candidates, "--out", root / "A", "--model", tiny_llm, "--tasks", "next_item",
           "--max-users", "8", "--n-candidates", "5", "--history-items", "3", "--no-progress")
    ulmrec("align", "train", "--samples", root / "A", "--model", tiny_llm, "--out", root / "T",
           "--max-steps", "2", "--valid-users", "4", "--no-progress")
    return root / "T"


def test_a_model_tuned_with_an_index_refuses_to_rank_without_it(pipeline: Pipeline, tuned_with_index: Path,
                                                                tmp_path: Path) -> None:
    args = ["align", "rank", "--model", tuned_with_index, "--data", pipeline.data, "--candidates",
            pipeline.candidates, "--limit", "2", "--no-progress"]
    refused = _run(*args, "--index", "none", "--out", tmp_path / "a.jsonl")
    assert refused.returncode != 0
    assert "tuned with the index" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "a.jsonl").exists()
    ulmrec(*args, "--index", pipeline.index, "--out", tmp_path / "b.jsonl")          # its own index: fine
    ulmrec(*args, "--index", "none", "--any-index", "--out", tmp_path / "c.jsonl")   # told otherwise: fine


def test_align_rank_refuses_an_output_another_process_is_writing(pipeline: Pipeline, tiny_llm: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "rank.jsonl"
    with folder_lock(out):     # as a concurrent `align rank --out rank.jsonl` holds it
        proc = _run("align", "rank", "--model", tiny_llm, "--data", pipeline.data, "--candidates",
                    pipeline.candidates, "--out", out, "--limit", "2", "--force", "--no-progress")
    assert proc.returncode != 0
    assert "being written by another process" in proc.stderr
    assert not out.exists()


def test_eval_refuses_duplicate_candidates_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"user_id": 1, "target": 5, "candidates": [5, 3], "scores": [0.1, 0.5]}\n'
                    '{"user_id": 2, "target": 5, "candidates": [5, 5, 3], "scores": [0.1, 0.9, 0.5]}\n')
    proc = _run("eval", "metrics", path)
    assert proc.returncode != 0
    assert f"{path}:2" in proc.stderr
    assert "more than once" in proc.stderr


@pytest.mark.parametrize("size", [21, 39, 41])
def test_a_large_pool_ranks_the_same_whatever_its_order(pipeline: Pipeline, tiny_llm: Path,
                                                        size: int) -> None:
    """Chunked ranking (issue 15): no lone item wins by default, rotations of the pool give the same
    ranking, and a duplicate is one candidate."""
    from ulmrec_align.ranking.recommender import Recommender

    rec = Recommender.load(tiny_llm, data=pipeline.data)
    pool = list(range(size))
    history = [size + 1, size + 2]
    base = rec.recommend(history=history, candidates=pool, k=size)
    assert sorted(r.item_id for r in base) == pool
    scores = {r.item_id: r.score for r in base}
    # the old chunking gave the item left alone in the last chunk log-probability 0.0 (first, always), so a
    # rotation of the pool changed the winner; here every rotation gives the same scores
    for shift in (1, size // 2, size - 1):
        rotated = pool[shift:] + pool[:shift]
        again = {r.item_id: r.score for r in rec.recommend(history=history, candidates=rotated, k=size)}
        assert again == pytest.approx(scores, abs=1e-5)
    doubled = rec.recommend(history=history, candidates=pool + pool[:3], k=size + 3)
    assert [r.item_id for r in doubled] == [r.item_id for r in base]
    with pytest.raises(Exception, match="at least 1"):
        rec.recommend(history=history, candidates=pool, k=-1)


@pytest.mark.parametrize(("damage", "named", "message"), [
    ("truncate", "adapter_model.safetensors", "truncated or corrupt"),
    ("drop_weights", "adapter_model.safetensors", "missing"),
    ("bad_config", "adapter_config.json", "malformed JSON"),
    ("drop_config", "adapter_config.json", "missing"),
])
def test_a_damaged_adapter_is_one_line_naming_its_file(tuned_with_index: Path, tmp_path: Path, damage: str,
                                                       named: str, message: str) -> None:
    import shutil

    from ulmrec_align.models.tuned import load_tuned_model
    from ulmrec_eval.runtime.errors import InputError

    copy = tmp_path / "T"
    shutil.copytree(tuned_with_index, copy)
    file = copy / "adapter" / named
    if damage == "truncate":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    elif damage == "bad_config":
        file.write_text('{"peft_type": "LORA", ', encoding="utf-8")
    else:
        file.unlink()
    with pytest.raises(InputError, match=message) as caught:
        load_tuned_model(copy)
    assert str(file) in str(caught.value)


def test_align_rank_with_a_truncated_adapter_prints_one_line(pipeline: Pipeline, tuned_with_index: Path,
                                                            tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "T"
    shutil.copytree(tuned_with_index, copy)
    weights = copy / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    proc = _run("align", "rank", "--model", copy, "--data", pipeline.data, "--index", pipeline.index,
                "--candidates", pipeline.candidates, "--out", tmp_path / "p.jsonl", "--no-progress")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(weights) in lines[0]
    assert "truncated or corrupt" in lines[0]
    assert not (tmp_path / "p.jsonl").exists()


def test_align_build_with_every_training_sample_weighted_out_writes_nothing(
        pipeline: Pipeline, tiny_llm: Path, tmp_path: Path) -> None:
    out = tmp_path / "A"
    proc = _run("align", "build", "--data", pipeline.data, "--index", pipeline.index, "--candidates",
                pipeline.candidates, "--out", out, "--model", tiny_llm, "--tasks", "next_item",
                "--task-weight", "next_item=0", "--max-users", "4", "--no-progress")
    assert proc.returncode == 1
    assert "no training samples would be written" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
