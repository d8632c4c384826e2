"""``check_out_apart``: no writer may replace, hold or write into one of its own inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmrec_eval.runtime.artifacts import OutputOverlapError, check_out_apart


def test_an_output_that_is_holds_or_lies_inside_an_input_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "c.jsonl").write_text("{}\n", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(data)
    cases = {data: "is", tmp_path: "holds", data / "samples": "lies inside", link: "is",
             data / "sub" / "c.jsonl": "lies inside", link / "sub" / "x": "lies inside"}
    for out, how in cases.items():
        with pytest.raises(OutputOverlapError, match=rf"^--out {out} {how} the input --data {data}: "):
            check_out_apart(out, {"--data": data})
    with pytest.raises(OutputOverlapError, match=r"--out .*sub holds the input --candidates .*c.jsonl"):
        check_out_apart(data / "sub", {"--candidates": data / "sub" / "c.jsonl"})


def test_outputs_apart_from_the_inputs_and_non_paths_pass(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    check_out_apart(tmp_path / "out", {"--data": data, "--index": "none", "--model": "smollm2",
                                       "--retriever": None})
    check_out_apart(tmp_path / "data-2", {"--data": data})        # a sibling whose name starts alike
    check_out_apart(tmp_path / "none", {"--index": "none"})       # 'none' is no file here: not an input
