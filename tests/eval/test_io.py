"""read_json_model: a JSON file into a pydantic model, errors naming the file (and line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import read_json_model


class _Config(BaseModel):
    name: str
    epochs: int = 3


def test_read_json_model_parses(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"name": "x", "epochs": 7}\n', encoding="utf-8")
    assert read_json_model(path, _Config) == _Config(name="x", epochs=7)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"name": "x",\n "epochs": }\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.json:2: malformed JSON"):
        read_json_model(path, _Config)


def test_invalid_field_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"name": "x", "epochs": "many"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.json: invalid _Config: epochs: "):
        read_json_model(path, _Config)


def test_iter_jsonl_names_the_line_that_is_not_utf8(tmp_path: Path) -> None:
    from ulmrec_eval.runtime.io import iter_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": "caf\xe9"}\n')
    rows = iter_jsonl(path)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(InputError, match=r"rows\.jsonl:3: not UTF-8 \(byte 0xe9 at column 11\)"):
        next(rows)


def test_iter_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    from ulmrec_eval.runtime.io import iter_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": "é"}\n   \n{"a": 2}\n', encoding="utf-8")
    assert list(iter_jsonl(path)) == [(1, {"a": "é"}), (3, {"a": 2})]


def _dead_pid() -> int:
    """A pid that no process has: a child that has already exited and been reaped."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_killed_writers_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from ulmrec_eval.runtime.io import atomic_write_text

    target = tmp_path / "metrics.json"
    # a real writer killed with SIGKILL while its temporary file is open
    code = ("import sys, time\nfrom ulmrec_eval.runtime.io import atomic_path\n"
            f"with atomic_path({str(target)!r}) as tmp:\n"
            "    tmp.write_text('partial')\n    print('ready', flush=True)\n    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1
    assert left[0].startswith(f".metrics.json.tmp-{child.pid}-")
    assert not target.exists()  # the killed write never appeared

    atomic_write_text(target, "whole\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    assert target.read_text() == "whole\n"


def test_a_live_writers_temporary_is_kept(tmp_path: Path) -> None:
    import os

    from ulmrec_eval.runtime.io import atomic_write_text, remove_dead_temporaries

    live = tmp_path / f".x.json.tmp-{os.getppid()}-abcd1234"  # our parent is alive
    dead = tmp_path / f".x.json.tmp-{_dead_pid()}-abcd1234"
    other = tmp_path / f".y.json.tmp-{_dead_pid()}-abcd1234"  # another file's temporary: not ours to judge
    for path in (live, dead, other):
        path.write_text("partial")
    assert remove_dead_temporaries(tmp_path / "x.json") == [dead]
    atomic_write_text(tmp_path / "x.json", "{}")
    assert live.exists()
    assert other.exists()
    assert not dead.exists()


def test_atomic_file_gets_the_usual_mode(tmp_path: Path) -> None:
    import os
    import stat

    from ulmrec_eval.runtime.io import atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
