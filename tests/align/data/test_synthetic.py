"""The synthetic Amazon generator: exact 2014 file format, determinism, 5-core survival, and real signal."""

from __future__ import annotations

import ast
import datetime as dt
import gzip
import json
from collections import Counter, defaultdict
from statistics import fmean

import pytest

from ulmrec_align.data.pipeline import prepare_dataset
from ulmrec_align.data.synthetic import write_synthetic_amazon


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = write_synthetic_amazon(tmp_path_factory.mktemp("syn"))
    reviews = [
        json.loads(line)
        for line in gzip.decompress((folder / "reviews_Synthetic_5.json.gz").read_bytes())
        .decode()
        .splitlines()
    ]
    meta_lines = gzip.decompress((folder / "meta_Synthetic.json.gz").read_bytes()).decode().splitlines()
    return folder, reviews, meta_lines


@pytest.fixture(scope="module")
def prepared(synthetic):
    return prepare_dataset(source="amazon", path=synthetic[0])


def test_files_are_in_the_2014_crawl_format(synthetic):
    _, reviews, meta_lines = synthetic
    assert set(reviews[0]) == {
        "reviewerID",
        "asin",
        "reviewerName",
        "helpful",
        "reviewText",
        "overall",
        "summary",
        "unixReviewTime",
        "reviewTime",
    }
    for line in meta_lines:  # Python literals with single quotes, not JSON
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert isinstance(ast.literal_eval(line), dict)
    for r in reviews:
        date = dt.datetime.fromtimestamp(r["unixReviewTime"], tz=dt.timezone.utc)
        assert r["reviewTime"] == f"{date.month:02d} {date.day}, {date.year}"
        assert r["overall"] in {1.0, 2.0, 3.0, 4.0, 5.0}


def test_default_size_survives_the_5_core_whole(prepared):
    m = prepared.manifest
    assert (m.counts.users, m.counts.items) == (300, 150)
    assert m.stats["dropped_k_core"] == 0
    assert m.stats["dropped_untitled"] == 0
    assert m.text_source == "reviews"
    assert m.has_ratings
    assert all(user.texts for user in prepared.users)


@pytest.mark.parametrize(("n_users", "n_items", "seed"), [(12, 10, 1), (60, 40, 2), (40, 90, 3)])
def test_other_sizes_survive_the_5_core_whole(tmp_path, n_users, n_items, seed):
    folder = write_synthetic_amazon(tmp_path, n_users=n_users, n_items=n_items, seed=seed)
    ds = prepare_dataset(source="amazon", path=folder)
    assert (ds.n_users, ds.n_items) == (n_users, n_items)


def test_deterministic_per_seed(tmp_path, synthetic):
    again = write_synthetic_amazon(tmp_path / "again")
    other = write_synthetic_amazon(tmp_path / "other", seed=1)
    for name in ("reviews_Synthetic_5.json.gz", "meta_Synthetic.json.gz"):
        assert (again / name).read_bytes() == (synthetic[0] / name).read_bytes()
        assert (other / name).read_bytes() != (synthetic[0] / name).read_bytes()


def test_time_strictly_increases_per_user(prepared):
    for seq in prepared.sequences:
        assert all(a < b for a, b in zip(seq.timestamps, seq.timestamps[1:], strict=False))


def test_titles_follow_brand_adjective_type_size_and_are_unescaped(prepared, synthetic):
    titles = prepared.titles()
    assert len(set(titles)) == len(titles)
    assert all(", " in t for t in titles)
    assert not any("&amp;" in t for t in titles)
    raw_titles = [ast.literal_eval(line).get("title", "") for line in synthetic[2]]
    assert any("&amp;" in t for t in raw_titles)  # the raw meta carries entities, like the real crawl
    assert any("Rose & Thorn" in t for t in titles)


def test_reviews_mention_the_product_and_agree_with_the_rating(synthetic):
    _, reviews, meta_lines = synthetic
    product = {
        m["asin"]: m["categories"][0][2].lower()
        for m in map(ast.literal_eval, meta_lines)
        if len(m["categories"][0]) == 3
    }
    for r in reviews:
        assert product[r["asin"]] in r["reviewText"].lower()
    positive = [r for r in reviews if r["overall"] >= 4]
    negative = [r for r in reviews if r["overall"] <= 2]
    assert positive
    assert negative
    assert all("wanted to love" not in r["reviewText"] for r in positive)
    assert all("wanted to love" in r["reviewText"] for r in negative)


def test_ratings_are_higher_inside_a_users_main_category(synthetic):
    _, reviews, meta_lines = synthetic
    category = {
        m["asin"]: m["categories"][0][1]
        for m in map(ast.literal_eval, meta_lines)
        if len(m["categories"][0]) == 3
    }
    by_user = defaultdict(list)
    for r in reviews:
        by_user[r["reviewerID"]].append((category[r["asin"]], r["overall"]))
    inside, outside = [], []
    for rows in by_user.values():
        main = Counter(c for c, _ in rows).most_common(1)[0][0]
        inside += [rating for c, rating in rows if c == main]
        outside += [rating for c, rating in rows if c != main]
    assert fmean(inside) > fmean(outside) + 0.5


def test_sequences_carry_signal_beyond_popularity(prepared):
    """A first-order transition model beats popularity on the validation target by a wide margin."""
    splits = prepared.splits
    popularity = Counter(i for s in splits for i in s.train)
    transitions: dict[int, Counter[int]] = defaultdict(Counter)
    for s in splits:
        for a, b in zip(s.train, s.train[1:], strict=False):
            transitions[a][b] += 1

    def hit(scores: Counter[int], s) -> bool:
        ranked = [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])) if i not in s.train]
        return s.valid_target in ranked[:10]

    pop_hits = sum(hit(popularity, s) for s in splits)
    markov_hits = 0
    for s in splits:
        scores = Counter({i: 1000 * c for i, c in transitions[s.train[-1]].items()})
        scores.update(popularity)
        markov_hits += hit(scores, s)
    assert markov_hits > 2 * pop_hits


def test_too_small_is_refused(tmp_path):
    with pytest.raises(ValueError, match="need n_users"):
        write_synthetic_amazon(tmp_path, n_users=3)


def test_max_users_keeps_a_seeded_subset_with_the_same_histories(synthetic, prepared):
    from ulmrec_align.data.config import PrepareConfig

    def histories(ds):
        titles = {item.item_id: item.raw_id for item in ds.items}
        raw = {user.user_id: user.raw_id for user in ds.users}
        return {raw[s.user_id]: [titles[i] for i in s.items] for s in ds.sequences}

    full = histories(prepared)
    small = prepare_dataset(source="amazon", path=synthetic[0], config=PrepareConfig(max_users=40))
    again = prepare_dataset(source="amazon", path=synthetic[0], config=PrepareConfig(max_users=40))
    other = prepare_dataset(source="amazon", path=synthetic[0],
                            config=PrepareConfig(max_users=40, subset_seed=1))
    subset = histories(small)
    assert small.manifest.counts.users == 40
    assert subset == {user: full[user] for user in subset}  # each kept user's whole history, in order
    assert small.manifest.counts.items == len({i for h in subset.values() for i in h})  # no unused item
    assert small.manifest.split_sha256 == again.manifest.split_sha256
    assert set(histories(other)) != set(subset)
    assert small.manifest.stats["dropped_max_users"] == prepared.manifest.counts.interactions - sum(
        len(h) for h in subset.values())
    everyone = prepare_dataset(source="amazon", path=synthetic[0],
                               config=PrepareConfig(max_users=prepared.manifest.counts.users))
    assert everyone.manifest.split_sha256 == prepared.manifest.split_sha256


def test_traits_file_holds_the_trait_each_users_reviews_state(synthetic):
    """traits_<Category>.jsonl is the ground truth of the hidden trait: with signal="reviews" every review
    that states a trait states that user's."""
    from ulmrec_align.data.synthetic import TRAITS

    folder, reviews, _ = synthetic
    traits = {r["user_id"]: r["label"] for r in map(json.loads, (folder / "traits_Synthetic.jsonl")
                                                    .read_text().splitlines())}
    assert set(traits) == {r["reviewerID"] for r in reviews}
    assert set(traits.values()) == set(TRAITS)
    stated = 0
    for review in reviews:
        said = [t for t, sentence in TRAITS.items() if review["reviewText"].startswith(sentence)]
        if said:
            stated += 1
            assert said == [traits[review["reviewerID"]]]
    assert stated > len(reviews) / 2


def test_the_review_names_the_trait_with_the_titles_word() -> None:
    """The trait sentence carries the very word the titles show, so a model can learn to copy it."""
    from ulmrec_align.data.synthetic import TRAITS

    for label, sentence in TRAITS.items():
        assert f" {label} " in f" {sentence} "
