"""The RecBole atomic-file reader: typed headers, preference, ratings, errors naming column/line."""

from __future__ import annotations

import pytest

from ulmrec_align.data.config import PrepareConfig
from ulmrec_align.data.pipeline import prepare_dataset
from ulmrec_align.data.users import user_texts_records, write_users_jsonl
from ulmrec_eval.runtime.errors import InputError

from .conftest import write_atomic

INTER = ["user_id:token", "item_id:token", "timestamp:float"]
K1 = PrepareConfig(k_core=1)


def _folder(tmp_path, *, inter_header=INTER, extra=None, user_rows=None):
    folder = tmp_path / "toy-recbole"
    folder.mkdir()
    rows = [
        ("u2", "i3", 3),
        ("u1", "i1", 1),
        ("u1", "i2", 2),
        ("u1", "i3", 3),
        ("u2", "i1", 1),
        ("u2", "i2", 2),
    ]
    if extra is not None:
        rows = [(*row, extra(k)) for k, row in enumerate(rows)]
    write_atomic(folder / "toy.inter", inter_header, rows)
    write_atomic(
        folder / "toy.item",
        ["item_id:token", "title:token_seq"],
        [("i1", "Shampoo &amp; Conditioner"), ("i2", "Hair   Mask"), ("i3", "Comb")],
    )
    write_atomic(
        folder / "toy.user",
        ["user_id:token", "preference:token_seq"],
        user_rows or [("u1", "The user prefers gentle hair care."), ("u2", "Likes combs.")],
    )
    return folder


def test_reads_preference_and_titles(tmp_path):
    ds = prepare_dataset(source="recbole", path=_folder(tmp_path), config=K1)
    assert ds.manifest.source_format == "recbole"
    assert ds.manifest.name == "toy-recbole"
    assert ds.manifest.text_source == "preference"
    assert not ds.manifest.has_ratings
    assert ds.titles() == ["Shampoo & Conditioner", "Hair Mask", "Comb"]
    assert [u.texts for u in ds.users] == [["The user prefers gentle hair care."], ["Likes combs."]]
    assert [s.items for s in ds.sequences] == [[0, 1, 2], [0, 1, 2]]
    assert ds.sequences[0].ratings is None
    assert [p.rsplit("/", 1)[-1] for p in (s.path for s in ds.manifest.sources)] == [
        "toy.inter",
        "toy.item",
        "toy.user",
    ]


def test_rating_and_review_columns(tmp_path):
    folder = _folder(tmp_path, inter_header=[*INTER, "rating:float"], extra=lambda k: k % 5 + 1)
    ds = prepare_dataset(source="recbole", path=folder / "toy.inter", config=K1)
    assert ds.manifest.has_ratings
    assert ds.sequences[1].ratings == [5.0, 1.0, 1.0]  # u2: i1 (row 5), i2 (row 6), i3 (row 1)


def test_users_without_a_preference_get_no_texts(tmp_path):
    folder = _folder(tmp_path, user_rows=[("u1", "Gentle things."), ("u2", " ")])
    ds = prepare_dataset(source="recbole", path=folder, config=K1)
    assert [u.texts for u in ds.users] == [["Gentle things."], []]
    assert list(user_texts_records(ds)) == [
        {"user_id": "u1", "texts": ["Gentle things."]},
        {"user_id": "u2", "texts": []},
    ]
    assert write_users_jsonl(ds, tmp_path / "USERS.jsonl", skip_empty=True) == 1
    assert (tmp_path / "USERS.jsonl").read_text() == '{"user_id":"u1","texts":["Gentle things."]}\n'


def test_missing_column_is_named(tmp_path):
    folder = _folder(tmp_path, inter_header=["user_id:token", "item_id:token", "time:float"])
    with pytest.raises(InputError, match=r"toy\.inter:1: missing column 'timestamp'"):
        prepare_dataset(source="recbole", path=folder, config=K1)
    write_atomic(folder / "toy.item", ["item_id:token", "name:token_seq"], [("i1", "x")])
    write_atomic(folder / "toy.inter", INTER, [("u1", "i1", 1)])
    with pytest.raises(InputError, match=r"toy\.item:1: missing column 'title'"):
        prepare_dataset(source="recbole", path=folder, config=K1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("u3\ti1", r"toy\.inter:8: expected 3 tab-separated columns, got 2"),
        ("u3\ti1\tlater", r"toy\.inter:8: column 'timestamp' must be a number, got 'later'"),
        ("u3\ti1\tnan", r"toy\.inter:8: column 'timestamp' must be a finite number, got 'nan'"),
        ("u3\ti1\t-inf", r"toy\.inter:8: column 'timestamp' must be a finite number, got '-inf'"),
        (" \ti1\t4", r"toy\.inter:8: column 'user_id' is empty"),
        ("u3\t\t4", r"toy\.inter:8: column 'item_id' is empty"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, line, message):
    folder = _folder(tmp_path)
    with (folder / "toy.inter").open("a") as handle:
        handle.write(line + "\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        prepare_dataset(source="recbole", path=folder, out=out, config=K1)
    assert not out.exists()


def test_bad_header_and_missing_item_file(tmp_path):
    folder = _folder(tmp_path)
    write_atomic(folder / "toy.inter", ["user_id", "item_id:token", "timestamp:float"], [])
    with pytest.raises(InputError, match=r"toy\.inter:1: header cell 'user_id'"):
        prepare_dataset(source="recbole", path=folder, config=K1)
    (folder / "toy.item").unlink()
    with pytest.raises(InputError, match=r"toy\.item: missing the \.item file"):
        prepare_dataset(source="recbole", path=folder, config=K1)
