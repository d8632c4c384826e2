"""`index probe --labels`: integer user ids, which `index build` accepts (as their decimal strings), are
accepted in a labels file too (issue 26, item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmrec_eval.runtime.errors import InputError
from ulmrec_index.probe import read_labels


def test_integer_user_ids_in_a_labels_file_are_their_decimal_strings(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"user_id": 7, "label": "a"}\n{"user_id": "8", "label": "b"}\n', encoding="utf-8")
    assert read_labels(path) == {"7": "a", "8": "b"}
    path.write_text('{"user_id": true, "label": "a"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"labels.jsonl:1: invalid LabelRecord: user_id"):
        read_labels(path)
