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
