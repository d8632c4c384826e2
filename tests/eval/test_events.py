"""ulmrec_eval.runtime.events: the progress-event stream (append, tail, malformed lines, two writers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.events import EVENTS_ENV, STAGE_ENV, emit, read_events, tail_events


def test_emit_is_a_no_op_without_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(EVENTS_ENV, raising=False)
    assert emit(step=1, total=2) is None
    assert list(tmp_path.iterdir()) == []


def test_emit_appends_lines_read_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv(EVENTS_ENV, str(path))
    monkeypatch.setenv(STAGE_ENV, "train")
    emit(step=np.int64(1), total=10, loss=np.float32(2.5))
    emit(step=2, total=10, loss=float("nan"), metric={"valid/ndcg@10": np.float64(0.25)})
    emit(message="done")
    events = read_events(path)
    assert [e.step for e in events] == [1, 2, None]
    assert events[0].loss == 2.5
    assert events[0].stage == "train"
    assert events[1].loss is None  # NaN has no JSON form
    assert events[1].metric == {"valid/ndcg@10": 0.25}
    assert events[0].fraction == pytest.approx(0.1)
    assert events[2].message == "done"
    assert events[0].time <= events[2].time <= time.time()


def test_tail_continues_from_offset_and_leaves_a_partial_line(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv(EVENTS_ENV, str(path))
    emit(step=1)
    first, offset = tail_events(path)
    assert [e.step for e in first] == [1]
    with path.open("a") as handle:
        handle.write('{"schema_version": 1, "time": 1.0, "step": 2')  # a writer mid-line
    more, offset2 = tail_events(path, offset)
    assert more == []
    assert offset2 == offset
    with path.open("a") as handle:
        handle.write("}\n")
    more, _ = tail_events(path, offset2)
    assert [e.step for e in more] == [2]


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"time": 1, "step": 1}\n{"time": 1, "step": -3}\n')
    with pytest.raises(InputError, match=r"events.jsonl:2: invalid StageEvent: step"):
        read_events(path)


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    code = ("import sys\nfrom ulmrec_eval.runtime.events import emit\n"
            "for i in range(300): emit(step=i, message=sys.argv[1] * 200)\n")
    env = {**os.environ, EVENTS_ENV: str(path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, c], env=env) for c in "ab"]
    assert all(p.wait() == 0 for p in procs)
    events = read_events(path)
    assert len(events) == 600
    assert all(e.message in ("a" * 200, "b" * 200) for e in events)
