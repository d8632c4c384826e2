"""``align build --negative-draws K`` on a real (synthetic) pipeline: K draws of each next_item training
prefix (same target and history, their own negatives and letter order), draw 0 the build without redraws
(byte for byte), other tasks and validation drawn once, retriever pools refused, old files still read."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from support.cli import one_line_error, run_ulmrec

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline

from ulmrec_align.models.testing import tiny_tokenizer
from ulmrec_align.tasks.build import BuildResult, build_samples, load_inputs, write_samples
from ulmrec_align.tasks.registry import DEFAULT_TASKS
from ulmrec_align.tasks.schema import AlignConfig, AlignmentSample, read_manifest, read_samples
from ulmrec_eval.runtime.errors import InputError


def _build(pipeline: Pipeline, **config: Any) -> BuildResult:
    dataset, artifact, rows, inputs = load_inputs(pipeline.data, pipeline.index, pipeline.candidates)
    cfg = AlignConfig(**{"tasks": list(DEFAULT_TASKS), "max_users": 20, **config})
    return build_samples(dataset, cfg, tiny_tokenizer(), index=artifact, candidates=rows, inputs=inputs,
                         paths={}, tokenizer_name="tiny")


def _history(sample: AlignmentSample) -> str:
    return next(line for line in sample.prompt.splitlines() if line.startswith("User history:"))


def test_each_prefix_gets_k_draws_with_their_own_negatives(pipeline: Pipeline) -> None:
    result = _build(pipeline, tasks=["next_item"], negative_draws=3)
    by_user: dict[int, dict[int, list[AlignmentSample]]] = defaultdict(lambda: defaultdict(list))
    for sample in result.samples["train"]:
        by_user[sample.user_id][sample.draw].append(sample)
    assert by_user
    differing = 0
    for draws in by_user.values():
        assert sorted(draws) == [0, 1, 2]
        first = draws[0]
        for d in (1, 2):   # the same prefixes, in the same order: target and history kept
            assert [s.target for s in draws[d]] == [s.target for s in first]
            assert [_history(s) for s in draws[d]] == [_history(s) for s in first]
            for a, b in zip(first, draws[d], strict=True):
                assert b.candidates is not None
                assert b.target in b.candidates
                assert b.response == b.target_letter
                differing += set(a.candidates or []) != set(b.candidates)
    prefixes = sum(len(draws[0]) for draws in by_user.values())
    assert differing == 2 * prefixes   # 19 of ~50 items: every redraw is another set of negatives
    assert result.manifest.counts["train"]["next_item"] == 3 * prefixes
    assert result.manifest.config.negative_draws == 3
    assert all(s.draw == 0 for s in result.samples["valid"])   # validation is drawn once


def test_one_draw_writes_the_samples_of_a_build_without_the_option(pipeline: Pipeline,
                                                                  tmp_path: Path) -> None:
    plain, once = _build(pipeline), _build(pipeline, negative_draws=1)
    thrice = _build(pipeline, negative_draws=3)
    write_samples(tmp_path / "plain", plain)
    write_samples(tmp_path / "once", once)
    text = (tmp_path / "plain" / "train.jsonl").read_bytes()
    assert (tmp_path / "once" / "train.jsonl").read_bytes() == text
    assert b'"draw"' not in text                       # draw 0 is not written: the lines of before
    # draw 0 of a K-draw build is that build; other tasks get one draw, the same as without redraws
    assert [s for s in thrice.samples["train"] if s.draw == 0] == plain.samples["train"]
    assert {s.task for s in thrice.samples["train"] if s.draw} == {"next_item"}
    assert thrice.samples["valid"] == plain.samples["valid"]
    write_samples(tmp_path / "thrice", thrice)
    again = read_samples(tmp_path / "thrice", "train")
    assert again == thrice.samples["train"]
    assert {s.draw for s in again} == {0, 1, 2}


def test_title_answers_redraw_their_pools(pipeline: Pipeline) -> None:
    result = _build(pipeline, tasks=["next_item"], negative_draws=2, prompt={"answer": "title"})
    rows = result.samples["train"]
    zero, one = [s for s in rows if s.draw == 0], [s for s in rows if s.draw == 1]
    assert len(zero) == len(one) > 0
    assert [s.response for s in zero] == [s.response for s in one]
    assert any(a.choices != b.choices for a, b in zip(zero, one, strict=True))


def test_retriever_pools_are_refused_with_several_draws(pipeline: Pipeline, tiny_llm: Path,
                                                        tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--negative-draws 2 .* --negatives random or --negative-draws 1"):
        _build(pipeline, tasks=["next_item"], negatives="retriever", negative_draws=2)
    line = one_line_error(run_ulmrec(
        "align", "build", "--data", pipeline.data, "--candidates", pipeline.candidates, "--out",
        tmp_path / "A", "--model", tiny_llm, "--tasks", "next_item", "--answer", "relevance",
        "--negative-draws", "2", "--no-progress"))
    assert "--negatives retriever (the default with --answer relevance)" in line
    assert not (tmp_path / "A").exists()
    too_many = run_ulmrec("align", "build", "--data", pipeline.data, "--out", tmp_path / "A", "--model",
                          tiny_llm, "--negative-draws", "17")
    assert too_many.returncode != 0
    assert "Traceback" not in too_many.stderr


def test_files_written_before_draws_existed_still_load(pipeline: Pipeline, tmp_path: Path) -> None:
    write_samples(tmp_path / "A", _build(pipeline, tasks=["next_item"], max_users=3))
    manifest = json.loads((tmp_path / "A" / "manifest.json").read_text())
    del manifest["config"]["negative_draws"]             # an AlignConfig of before the option
    (tmp_path / "A" / "manifest.json").write_text(json.dumps(manifest))
    assert read_manifest(tmp_path / "A").config.negative_draws == 1
    rows = read_samples(tmp_path / "A", "train")
    assert rows
    assert all(s.draw == 0 for s in rows)
    lines = (tmp_path / "A" / "train.jsonl").read_text().splitlines()
    assert all("draw" not in json.loads(line) for line in lines)
