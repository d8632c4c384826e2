"""Bad input to the indexer: each one a clear error naming file:line, or a documented behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ulmrec_eval.runtime.errors import InputError
from ulmrec_index.users import UserText, check_unique_ids, read_user_texts


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_blank_strings_are_dropped_and_empty_lists_kept(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "u.jsonl",
        [
            json.dumps({"user_id": "a", "texts": ["", "  ", "likes lipstick"]}).encode(),
            json.dumps({"user_id": "b", "texts": []}).encode(),
            json.dumps({"user_id": "c", "texts": ["\t"]}).encode(),
            json.dumps({"user_id": "d"}).encode(),
        ],
    )
    users = read_user_texts(file)
    assert [u.texts for u in users] == [["likes lipstick"], [], [], []]


def test_duplicated_user_id_names_file_and_both_lines(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "u.jsonl",
        [
            b'{"user_id": "a", "texts": ["x"]}',
            b"",
            b'{"user_id": "b", "texts": ["y"]}',
            b'{"user_id": "a", "texts": ["z"]}',
        ],
    )
    with pytest.raises(InputError) as info:
        read_user_texts(file)
    assert f"{file}:4:" in str(info.value)
    assert "line 1" in str(info.value)
    assert info.value.line == 4


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "u.jsonl",
        [b'{"user_id": "a", "texts": ["ok"]}', b'{"user_id": "b", "texts": ["caf\xe9"]}'],
    )
    with pytest.raises(InputError, match=r"u\.jsonl:2: not valid UTF-8"):
        read_user_texts(file)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"user_id": "a", "texts": ["x"]', "malformed JSON"),
        (b'{"user_id": "", "texts": ["x"]}', "user_id"),
        (b'{"user_id": "a", "texts": "not a list"}', "texts"),
        (b'{"user_id": "a", "texts": ["x"], "extra": 1}', "extra"),
    ],
)
def test_malformed_records(tmp_path: Path, line: bytes, message: str) -> None:
    file = _write(tmp_path / "u.jsonl", [b'{"user_id": "ok", "texts": []}', line])
    with pytest.raises(InputError, match=message) as info:
        read_user_texts(file)
    assert info.value.line == 2


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no users"):
        read_user_texts(_write(tmp_path / "u.jsonl", [b""]))


def test_in_memory_duplicates() -> None:
    with pytest.raises(InputError, match="duplicated user_id 'a'"):
        check_unique_ids([UserText(user_id="a"), UserText(user_id="a")])
