"""The preparation pipeline on hand-checked raw Amazon fixtures (2014 and 2018 crawl formats)."""

from __future__ import annotations

import doctest
import gzip
import hashlib
import importlib
import json
import random

import pytest

from ulmrec_align.data.config import PrepareConfig
from ulmrec_align.data.pipeline import prepare_dataset
from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.data.split import leave_one_out, split_sha256
from ulmrec_eval.runtime.errors import InputError

K2 = PrepareConfig(k_core=2)


def test_cascade_k_core_dense_ids_order_and_split(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)
    ds = prepare_dataset(source="amazon", path=folder, out=tmp_path / "out", config=K2)

    assert [u.raw_id for u in ds.users] == ["AU1", "AU2"]
    assert [i.raw_id for i in ds.items] == ["B000000AAA", "B000000BBB", "B000000CCC"]
    assert ds.titles() == ["Foo & Bar Blocks", "Robot Kit, 12 pieces", 'Kid\'s "Deluxe" Puzzle']
    # u1: the untitled X (t=5) is gone; u2: B and A share t=10, so the dense item id breaks the tie.
    assert [s.items for s in ds.sequences] == [[0, 1, 2], [0, 1, 2]]
    assert ds.sequences[1].timestamps == [10.0, 10.0, 20.0]
    assert ds.sequences[1].ratings == [1.0, 2.0, 5.0]
    assert ds.splits[0] == leave_one_out(0, [0, 1, 2])
    m = ds.manifest
    assert (m.counts.users, m.counts.items, m.counts.interactions) == (2, 3, 6)
    assert m.source_format == "amazon2014"
    assert m.has_ratings
    assert m.text_source == "reviews"
    assert m.stats["dropped_untitled"] == 1
    assert m.stats["dropped_k_core"] == 6
    assert m.stats["k_core_rounds"] == 2
    assert m.config["k_core"] == 2
    assert [s.path for s in m.sources] == [
        str((folder / n).resolve()) for n in ("reviews_Toys_5.json.gz", "meta_Toys.json.gz")
    ]
    assert m.split_sha256 == split_sha256(
        [
            ("AU1", ["B000000AAA"], "B000000BBB", "B000000CCC"),
            ("AU2", ["B000000AAA"], "B000000BBB", "B000000CCC"),
        ]
    )

    loaded = PreparedDataset.load(tmp_path / "out")
    assert loaded.items == ds.items
    assert loaded.sequences == ds.sequences
    assert loaded.manifest.split_sha256 == m.split_sha256


def test_user_texts_come_from_training_interactions_only(
    tmp_path, write_amazon, cascade_reviews, cascade_meta
):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)
    ds = prepare_dataset(source="amazon", path=folder, out=None, config=K2)
    # u1's sequence is A, B, C: only A is a training item; B (validation) and C (test) must not leak.
    assert ds.users[0].texts == ["Loved the A."]
    assert all("test item" not in text for user in ds.users for text in user.texts)
    summaries = prepare_dataset(
        source="amazon", path=folder, config=K2.model_copy(update={"text_source": "summaries"})
    )
    assert summaries.users[0].texts == ["summary B000000AAA AU1"]
    none = prepare_dataset(source="amazon", path=folder, config=K2.model_copy(update={"text_source": "none"}))
    assert all(user.texts == [] for user in none.users)


def test_single_round_k_core_is_llamarec_pass(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)
    ds = prepare_dataset(source="amazon", path=folder, config=K2.model_copy(update={"k_core_rounds": 1}))
    assert [u.raw_id for u in ds.users] == ["AU1", "AU2", "AU3"]
    assert "B000000DDD" in [i.raw_id for i in ds.items]  # left with one interaction after a single pass


def test_input_row_order_does_not_change_the_result(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    first = prepare_dataset(
        source="amazon", path=write_amazon(tmp_path / "a", cascade_reviews, cascade_meta), config=K2
    )
    shuffled = list(cascade_reviews)
    random.Random(3).shuffle(shuffled)
    second = prepare_dataset(
        source="amazon", path=write_amazon(tmp_path / "b", shuffled, cascade_meta[::-1]), config=K2
    )
    assert second.manifest.split_sha256 == first.manifest.split_sha256
    assert second.sequences == first.sequences


def test_2018_crawl_json_meta(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta, crawl="2018")
    ds = prepare_dataset(source="amazon", path=folder, config=K2)
    assert ds.manifest.source_format == "amazon2018"
    assert ds.manifest.name == "amazon-toys"
    assert ds.titles()[0] == "Foo & Bar Blocks"


def test_meta_lines_are_never_evaluated(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)
    marker = tmp_path / "PWNED"
    evil = f"{{'asin': 'B000000AAA', 'title': __import__('pathlib').Path({str(marker)!r}).touch()}}"
    lines = [repr(m) for m in cascade_meta[1:]] + [evil]
    with gzip.open(folder / "meta_Toys.json.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"meta_Toys\.json\.gz:7: malformed meta record"):
        prepare_dataset(source="amazon", path=folder, config=K2)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("update", "expected_users"),
    [
        (
            {"min_rating": 3.0},
            [],
        ),  # u2's A and B are rated 1 and 2: u2 drops, then A, B, C have one user each
        ({"k_core": 1}, ["AU1", "AU2", "AU3", "AU4"]),
        ({"k_core": 1, "min_sequence_length": 4}, []),  # nobody has 4 titled interactions
        ({"k_core": 3}, []),
    ],
)
def test_config_variants(tmp_path, write_amazon, cascade_reviews, cascade_meta, update, expected_users):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)
    config = K2.model_copy(update=update)
    if not expected_users:
        with pytest.raises(InputError, match="no interactions survive"):
            prepare_dataset(source="amazon", path=folder, config=config)
        return
    ds = prepare_dataset(source="amazon", path=folder, config=config)
    assert [u.raw_id for u in ds.users] == expected_users


def test_drop_repeats_and_max_texts(tmp_path, write_amazon, cascade_meta, make_review):
    reviews = [make_review("AU1", "B000000AAA", t, text=f"text {t}") for t in (1, 2, 4)] + [
        make_review("AU1", "B000000BBB", 3),
        make_review("AU1", "B000000CCC", 5),
    ]
    folder = write_amazon(tmp_path / "raw", reviews, cascade_meta)
    base = PrepareConfig(k_core=1)
    lengths = {
        mode: len(
            prepare_dataset(
                source="amazon", path=folder, config=base.model_copy(update={"drop_repeats": mode})
            )
            .sequences[0]
            .items
        )
        for mode in ("none", "consecutive", "all")
    }
    assert lengths == {"none": 5, "consecutive": 4, "all": 3}
    # sequence A A B A C: training part is A A B; the newest two texts are kept, in time order
    ds = prepare_dataset(
        source="amazon", path=folder, config=base.model_copy(update={"max_texts_per_user": 2})
    )
    assert ds.users[0].texts == ["text 2", "review of B000000BBB by AU1"]
    cut = prepare_dataset(source="amazon", path=folder, config=base.model_copy(update={"max_text_chars": 4}))
    assert cut.users[0].texts == ["text", "text", "revi"]


def test_category_choice_when_folder_has_several(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta, category="Toys")
    write_amazon(folder, cascade_reviews, cascade_meta, category="Baby")
    with pytest.raises(InputError, match="found Baby, Toys"):
        prepare_dataset(source="amazon", path=folder, config=K2)
    ds = prepare_dataset(source="amazon", path=folder, config=K2.model_copy(update={"category": "Baby"}))
    assert ds.manifest.name == "amazon-baby"
    ds = prepare_dataset(source="amazon", path=folder / "reviews_Toys_5.json.gz", config=K2, name="toys")
    assert ds.manifest.name == "toys"


def test_unavailable_text_source_is_an_error(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)
    with pytest.raises(InputError, match="text_source 'preference' is not available"):
        prepare_dataset(
            source="amazon", path=folder, config=K2.model_copy(update={"text_source": "preference"})
        )


def test_manifest_is_json_with_schema_version(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)
    prepare_dataset(source="amazon", path=folder, out=tmp_path / "out", config=K2)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["kind"] == "prepared-dataset"
    assert {s["sha256"] for s in manifest["sources"]} == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "items.jsonl",
        "manifest.json",
        "sequences.jsonl",
        "users.jsonl",
    ]


@pytest.mark.parametrize("module", ["text", "kcore", "split"])
def test_doctests(module):
    mod = importlib.import_module(f"ulmrec_align.data.{module}")
    result = doctest.testmod(mod)
    assert result.attempted > 0
    assert result.failed == 0
