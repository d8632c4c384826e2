"""Predictions, reports, the subset/overall convention, history buckets, and file-level bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from ulmrec_eval.evaluation import evaluate, evaluate_ranks, load_predictions, prediction_ranks
from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.schemas import SCHEMA_VERSION, EvalResult, MetricReport, RankedPrediction


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ schema
def test_prediction_forms() -> None:
    listed = RankedPrediction(user_id="u1", target=3, ranked=[5, 3, 1])
    scored = RankedPrediction(user_id=2, target="b", candidates=["a", "b"], scores=[0.1, -math.inf])
    assert listed.schema_version == SCHEMA_VERSION
    assert not listed.uses_scores
    assert scored.uses_scores
    assert prediction_ranks([listed, scored]).tolist() == [2, 2]


def test_scores_take_precedence_over_ranked() -> None:
    p = RankedPrediction(user_id=1, target=1, ranked=[1, 2], candidates=[1, 2], scores=[0.5, 0.5])
    assert prediction_ranks([p]).tolist() == [2]  # pessimistic tie, not position 1 of `ranked`


@pytest.mark.parametrize(("record", "message"), [
    ({"user_id": 1, "target": 2}, "needs 'ranked'"),
    ({"user_id": 1, "target": 2, "candidates": [2]}, "go together"),
    ({"user_id": 1, "target": 2, "candidates": [2, 3], "scores": [0.1]}, "2 candidates but 1 scores"),
    ({"user_id": 1, "target": 2, "candidates": [2, 3], "scores": [0.1, float("nan")]}, "is NaN"),
    ({"user_id": 1, "target": 2, "ranked": ["2", "3"]}, "other id types"),
    ({"user_id": 1, "target": 2, "candidates": [2], "scroes": [1.0]}, "go together"),  # a typo is caught
    ({"user_id": 1, "target": 2, "ranked": [2], "schema_version": 99}, "newer"),
    ({"user_id": 1, "target": 2, "ranked": [2], "history_length": -1}, "greater than or equal"),
])
def test_prediction_validation(record: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RankedPrediction.model_validate(record)


# ----------------------------------------------------------------------------------------------- scopes
def test_full_scope_counts_misses() -> None:
    (report,) = evaluate_ranks([1, 3, 0, 25], ks=(1, 5, 30))
    assert report.scope == "full"
    assert report.n_users == report.total_users == 4
    assert report.subset_size is None
    assert report.metrics["recall@1"] == 0.25
    assert report.metrics["recall@5"] == 0.5
    assert report.metrics["recall@30"] == 0.75
    assert report.metrics["mrr@5"] == pytest.approx((1 + 1 / 3) / 4)


def test_llamarec_subset_and_overall_by_hand() -> None:
    # 5 users, retrieved top-3: ranks 1, 2 and 3 are retrieved; 0 (not retrieved) and 7 (beyond N) are not
    subset, overall = evaluate_ranks([1, 2, 0, 3, 7], ks=(1, 2, 3, 5), retrieved_n=3)
    assert (subset.scope, overall.scope) == ("subset", "overall")
    assert subset.subset_size == overall.subset_size == 3
    assert subset.n_users == 3
    assert overall.n_users == overall.total_users == 5
    assert subset.metrics["recall@1"] == pytest.approx(1 / 3)
    assert subset.metrics["recall@3"] == 1.0
    assert subset.metrics["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    # overall = subset × |subset| / |all|, for every K <= N; K = 5 > N is omitted, never guessed
    for key, value in overall.metrics.items():
        assert value == pytest.approx(subset.metrics[key] * 3 / 5)
    assert overall.ks == [1, 2, 3]
    assert overall.omitted_ks == [5]
    assert "recall@5" not in overall.metrics
    assert subset.retrieved_n == overall.retrieved_n == 3


def test_empty_subset_is_reported_not_crashing() -> None:
    subset, overall = evaluate_ranks([0, 0], ks=(1, 5), retrieved_n=5)
    assert subset.n_users == 0
    assert subset.metrics == {}
    assert overall.metrics["recall@5"] == 0.0


def test_history_buckets() -> None:
    ranks = np.array([1, 0, 2, 5, 1, 3])
    lengths = np.array([3, 4, 7, 12, 60, -1])  # -1: unknown, left out of the buckets
    (report,) = evaluate_ranks(ranks, ks=(1, 5), history_lengths=lengths, bucket_edges=(5, 10, 50))
    labels = [(b.label, b.n_users) for b in report.buckets]
    assert labels == [("<5", 2), ("5-9", 1), ("10-49", 1), ("50+", 1)]
    first = report.buckets[0]
    assert first.min_length == 0
    assert first.max_length == 4
    assert first.metrics["recall@1"] == 0.5
    assert report.buckets[-1].max_length is None
    assert report.buckets[-1].metrics["mrr@5"] == 1.0
    assert sum(b.n_users for b in report.buckets) == 5


def test_report_round_trips_as_json() -> None:
    result = EvalResult(reports=evaluate_ranks([1, 2, 0], ks=(1, 10), retrieved_n=20,
                                               history_lengths=[4, 8, 30]))
    again = EvalResult.model_validate_json(result.model_dump_json())
    assert again == result
    assert again.scope("overall").value("hit@10") == pytest.approx(2 / 3)
    assert again.scope("subset").schema_version == SCHEMA_VERSION
    with pytest.raises(KeyError):
        again.scope("full")
    with pytest.raises(KeyError, match="not in this"):
        again.scope("overall").value("ndcg@5")
    assert isinstance(again.reports[0], MetricReport)


# ------------------------------------------------------------------------------------------------- files
def test_evaluate_file_both_forms(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", [
        json.dumps({"user_id": 1, "target": 3, "ranked": [3, 4, 5], "history_length": 4, "source": "x"}),
        "",  # blank lines are skipped
        json.dumps({"user_id": 2, "target": 9, "candidates": [8, 9], "scores": [0.5, 0.5], "source": "x"}),
        json.dumps({"user_id": 3, "target": 1, "ranked": [2, 3], "source": "x"}),
    ])
    result = evaluate(path, ks=(1, 2), retrieved_n=2)
    subset, overall = result.reports
    assert result.predictions == str(path)
    assert subset.source == "x"
    assert subset.n_users == 2
    assert subset.metrics["recall@1"] == 0.5
    assert overall.metrics["recall@2"] == pytest.approx(2 / 3)
    assert [b.n_users for b in overall.buckets if b.n_users] == [1]


def test_json_infinity_is_a_mask_but_nan_is_an_error(tmp_path: Path) -> None:
    ok = write_lines(tmp_path / "ok.jsonl", ['{"user_id": 1, "target": 2, "candidates": [1, 2, 3], '
                                             '"scores": [-Infinity, 0.5, 0.7]}'])
    assert prediction_ranks(load_predictions(ok)).tolist() == [2]
    bad = write_lines(tmp_path / "bad.jsonl", [
        '{"user_id": 1, "target": 2, "ranked": [2]}',
        '{"user_id": 2, "target": 2, "candidates": [1, 2], "scores": [NaN, 0.5]}',
    ])
    with pytest.raises(InputError, match=r"bad\.jsonl:2: .*NaN") as info:
        load_predictions(bad)
    assert info.value.line == 2


@pytest.mark.parametrize(("lines", "line", "message"), [
    (['{"user_id": 1, "target": 2, "ranked": [2]}', '{"user_id": 2, "target": '], 2, "malformed JSON"),
    (['{"user_id": 1, "ranked": [2]}'], 1, "target: Field required"),
    (['{"user_id": 1, "target": 2, "ranked": [2]}', "", '{"user_id": 1, "target": 3, "ranked": [2]}'], 3,
     "repeats line 1"),
    (['{"user_id": 1, "target": 2, "ranked": "abc"}'], 1, "ranked"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    path = write_lines(tmp_path / "preds.jsonl", lines)
    with pytest.raises(InputError, match=message) as info:
        load_predictions(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_empty_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "empty.jsonl", [""])
    with pytest.raises(InputError, match="empty"):
        load_predictions(path)


# ------------------------------------------------------------------------------------------------ splits
def _write_split_file(path: Path) -> None:
    rows = [
        {"user_id": 0, "split": "valid", "target": 5, "candidates": [5, 6], "scores": [0.9, 0.1],
         "raw_user_id": "A1", "target_in_candidates": True},
        {"user_id": 0, "split": "test", "target": 6, "candidates": [5, 6], "scores": [0.9, 0.1],
         "raw_user_id": "A1", "target_in_candidates": True},
        {"user_id": 1, "split": "test", "target": 7, "candidates": [5, 6], "scores": [0.9, 0.1],
         "raw_user_id": "A2", "target_in_candidates": False},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_split_selects_records_and_extra_fields_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "candidates.jsonl"
    _write_split_file(path)
    test = load_predictions(path, split="test")
    assert [(p.user_id, p.split) for p in test] == [(0, "test"), (1, "test")]
    assert prediction_ranks(test).tolist() == [2, 0]
    (report,) = evaluate(path, ks=(1, 2), split="valid").reports
    assert report.metrics["recall@1"] == 1.0


def test_mixed_splits_need_a_choice(tmp_path: Path) -> None:
    path = tmp_path / "candidates.jsonl"
    _write_split_file(path)
    with pytest.raises(InputError, match=r"candidates.jsonl:2: split 'test' here but 'valid' on line 1"):
        load_predictions(path)
    with pytest.raises(InputError, match="no predictions of split 'train'"):
        load_predictions(path, split="train")


# ------------------------------------------------------------------------------------ rows carry their N
def test_rows_that_carry_retrieved_n_are_reported_as_subset_and_overall(tmp_path: Path) -> None:
    rows = [{"user_id": u, "target": t, "candidates": [1, 2, 3], "scores": [0.3, 0.2, 0.1], "retrieved_n": 3}
            for u, t in enumerate([1, 3, 9, 2])]
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(r) for r in rows])
    result = evaluate(path, ks=(1, 3))
    subset, overall = result.scope("subset"), result.scope("overall")
    assert (subset.retrieved_n, subset.n_users, overall.n_users) == (3, 3, 4)
    assert subset.metrics["recall@1"] == pytest.approx(1 / 3)
    assert evaluate(path, ks=(1,), retrieved_n=20).scope("subset").retrieved_n == 20   # an explicit N wins


def test_rows_that_disagree_on_retrieved_n_are_refused(tmp_path: Path) -> None:
    rows = [{"user_id": 1, "target": 1, "ranked": [1], "retrieved_n": 5},
            {"user_id": 2, "target": 1, "ranked": [1], "retrieved_n": 20}]
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(r) for r in rows])
    with pytest.raises(InputError, match=r"p\.jsonl: rows disagree on retrieved_n \(5, 20\)"):
        evaluate(path)


def test_npz_and_jsonl_writers_record_retrieved_n(tmp_path: Path) -> None:
    from ulmrec_eval.predictions import write_predictions

    for name in ("p.jsonl", "p.npz"):
        path = write_predictions(tmp_path / name, [1, 2], [7, 9], candidates=np.array([[7, 8], [8, 5]]),
                                 scores=np.array([[0.5, 0.25], [0.5, 0.4]]), retrieved_n=2)
        result = evaluate(path, ks=1)
        assert [r.scope for r in result.reports] == ["subset", "overall"], name
        assert result.scope("subset").n_users == 1, name
