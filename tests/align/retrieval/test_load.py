"""load_retriever: a damaged config.json is a one-line error naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ulmrec_align.retrieval.api import CONFIG_FILE, MODEL_FILE, load_retriever
from ulmrec_align.retrieval.errors import RetrieverError


@pytest.mark.parametrize(("saved", "message"), [
    ({"n_items": 5}, r"config\.json: missing field 'config'"),
    ({"n_items": 5, "config": {"train": {"epochs": "many"}}},
     r"config\.json: invalid RetrieverConfig: train\.epochs: "),
    ({"n_items": "five", "config": {}}, r"config\.json: n_items must be an integer"),
])
def test_bad_config_names_file_and_field(tmp_path: Path, saved: dict[str, object], message: str) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"")
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"schema_version": 1, "kind": "lrurec", **saved}),
                                        encoding="utf-8")
    with pytest.raises(RetrieverError, match=message):
        load_retriever(tmp_path)
