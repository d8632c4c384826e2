"""read_json_model: a JSON file into a pydantic model, errors naming the file (and line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from ulmrec_eval.errors import InputError
from ulmrec_eval.io import read_json_model


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
    from ulmrec_eval.io import iter_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": "caf\xe9"}\n')
    rows = iter_jsonl(path)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(InputError, match=r"rows\.jsonl:3: not UTF-8 \(byte 0xe9 at column 11\)"):
        next(rows)


def test_iter_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    from ulmrec_eval.io import iter_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": "é"}\n   \n{"a": 2}\n', encoding="utf-8")
    assert list(iter_jsonl(path)) == [(1, {"a": "é"}), (3, {"a": 2})]
