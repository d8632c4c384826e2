"""Bad input: errors name the file and line (or column), and nothing is written half-way."""

from __future__ import annotations

import gzip

import pytest

from ulmrec_align.data.config import PrepareConfig
from ulmrec_align.data.pipeline import prepare_dataset
from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_eval.runtime.errors import InputError

K2 = PrepareConfig(k_core=2)


def _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    return write_amazon(tmp_path / "raw", cascade_reviews, cascade_meta)


def _rewrite_reviews(folder, transform):
    path = folder / "reviews_Toys_5.json.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(transform(lines)) + "\n").encode()))


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (
            lambda ls: [*ls[:2], '{"reviewerID": "AU9", "asin": ', *ls[2:]],
            r"reviews_Toys_5\.json\.gz:3: malformed JSON",
        ),
        (
            lambda ls: [*ls[:1], ls[1].replace('"asin"', '"ASIN"'), *ls[2:]],
            r"reviews_Toys_5\.json\.gz:2: missing field 'asin'",
        ),
        (
            lambda ls: [*ls[:4], ls[4].replace('"unixReviewTime": 10', '"unixReviewTime": "soon"'), *ls[5:]],
            r"reviews_Toys_5\.json\.gz:5: unixReviewTime must be a number, got 'soon'",
        ),
        (
            lambda ls: [*ls[:4], ls[4].replace('"unixReviewTime": 10', '"unixReviewTime": NaN'), *ls[5:]],
            r"reviews_Toys_5\.json\.gz:5: unixReviewTime must be a finite number, got nan",
        ),
        (
            lambda ls: [*ls[:2], ls[2].replace('"overall": 5.0', '"overall": Infinity'), *ls[3:]],
            r"reviews_Toys_5\.json\.gz:3: overall must be a finite number, got inf",
        ),
        (
            lambda ls: [*ls[:1], ls[1].replace('"reviewerID": "', '"reviewerID": "  ", "x": "'), *ls[2:]],
            r"reviews_Toys_5\.json\.gz:2: reviewerID is empty",
        ),
        (
            lambda ls: [*ls[:1], ls[1].replace('"asin": "', '"asin": "", "x": "'), *ls[2:]],
            r"reviews_Toys_5\.json\.gz:2: asin is empty",
        ),
        (lambda ls: [*ls[:3], "[1, 2]", *ls[3:]], r"reviews_Toys_5\.json\.gz:4: expected a JSON object"),
    ],
)
def test_malformed_review_line_names_file_and_line(
    tmp_path, write_amazon, cascade_reviews, cascade_meta, transform, message
):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    _rewrite_reviews(folder, transform)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        prepare_dataset(source="amazon", path=folder, out=out, config=K2)
    assert not out.exists()


def test_blank_lines_are_skipped_but_line_numbers_stay_true(
    tmp_path, write_amazon, cascade_reviews, cascade_meta
):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    _rewrite_reviews(folder, lambda ls: ["", *ls[:3], "  ", "{oops", *ls[3:]])
    with pytest.raises(InputError, match=r":6: malformed JSON"):
        prepare_dataset(source="amazon", path=folder, config=K2)


def test_meta_without_asin_names_the_line(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    meta = [*cascade_meta[:2], {"title": "orphan"}, *cascade_meta[2:]]
    folder = write_amazon(tmp_path / "raw", cascade_reviews, meta)
    with pytest.raises(InputError, match=r"meta_Toys\.json\.gz:3: missing field 'asin'"):
        prepare_dataset(source="amazon", path=folder, config=K2)


def test_not_a_gzip_file_names_the_file(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    (folder / "meta_Toys.json.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(InputError, match=r"meta_Toys\.json\.gz: unreadable gzip file"):
        prepare_dataset(source="amazon", path=folder, out=tmp_path / "out", config=K2)
    assert not (tmp_path / "out").exists()


def test_truncated_gzip_names_the_file(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    path = folder / "reviews_Toys_5.json.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(InputError, match=r"reviews_Toys_5\.json\.gz: unreadable gzip file"):
        prepare_dataset(source="amazon", path=folder, config=K2)


def test_invalid_utf8_names_the_line(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    path = folder / "reviews_Toys_5.json.gz"
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    lines[1] = lines[1].replace(b"N. N.", b"N\xff N")
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(InputError, match=r"reviews_Toys_5\.json\.gz:2: not valid UTF-8"):
        prepare_dataset(source="amazon", path=folder, config=K2)


def test_missing_meta_file_and_missing_folder(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    (folder / "meta_Toys.json.gz").unlink()
    with pytest.raises(InputError, match=r"missing the meta file meta_Toys\.json\.gz"):
        prepare_dataset(source="amazon", path=folder, config=K2)
    with pytest.raises(InputError, match="no such file or folder"):
        prepare_dataset(source="amazon", path=tmp_path / "nowhere", config=K2)


def test_failed_prepare_leaves_an_existing_folder_untouched(
    tmp_path, write_amazon, cascade_reviews, cascade_meta
):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    out = tmp_path / "out"
    good = prepare_dataset(source="amazon", path=folder, out=out, config=K2)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _rewrite_reviews(folder, lambda ls: [*ls, "{broken"])
    with pytest.raises(InputError):
        prepare_dataset(source="amazon", path=folder, out=out, config=K2, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert PreparedDataset.load(out).manifest.split_sha256 == good.manifest.split_sha256


def test_interrupted_save_keeps_the_previous_folder_whole(
    tmp_path, write_amazon, cascade_reviews, cascade_meta, monkeypatch
):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    out = tmp_path / "out"
    dataset = prepare_dataset(source="amazon", path=folder, out=out, config=K2)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import ulmrec_align.data.prepared as prepared

    real_write = prepared.atomic_write_jsonl
    calls = []

    def failing_write(path, rows):  # the second file fails, as if the disk filled up
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(path, rows)

    monkeypatch.setattr(prepared, "atomic_write_jsonl", failing_write)
    with pytest.raises(OSError, match="disk full"):
        dataset.save(out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old folder, whole
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    PreparedDataset.load(out)


def test_edited_prepared_file_fails_verification(tmp_path, write_amazon, cascade_reviews, cascade_meta):
    folder = _raw(tmp_path, write_amazon, cascade_reviews, cascade_meta)
    out = tmp_path / "out"
    prepare_dataset(source="amazon", path=folder, out=out, config=K2)
    sequences = out / "sequences.jsonl"
    sequences.write_text(sequences.read_text().replace("[0,1,2]", "[0,2,1]", 1))
    with pytest.raises(InputError, match="does not match the manifest"):
        PreparedDataset.load(out)


def test_a_pipeline_stage_folder_is_refused_with_the_dataset_it_holds(tmp_path):
    import json as _json

    stage = tmp_path / "data"
    (stage / "dataset").mkdir(parents=True)
    (stage / "dataset" / "manifest.json").write_text("{}", encoding="utf-8")
    (stage / "manifest.json").write_text(_json.dumps({"schema_version": 1, "stage": "data", "run": "demo"}),
                                         encoding="utf-8")
    with pytest.raises(InputError, match=r"pipeline stage 'data', not a prepared dataset; its prepared "
                                         r"dataset is .*data/dataset"):
        PreparedDataset.load(stage)
    index = tmp_path / "index"
    index.mkdir()
    (index / "manifest.json").write_text(_json.dumps({"kind": "user-index"}), encoding="utf-8")
    with pytest.raises(InputError, match="'user-index' artifact, not a prepared dataset"):
        PreparedDataset.load(index)
