"""ulmrec-eval as a library on another model's outputs: numpy/torch inputs, dicts, the predictions writer,
``.npz`` files, ``compare_ranks``, clear errors for wrong types, and import-order independence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ulmrec_eval
from ulmrec_eval import (
    compare_predictions,
    compare_ranks,
    compute_metrics,
    evaluate,
    evaluate_ranks,
    per_user_metric,
    ranks_from_candidates,
    ranks_from_lists,
    read_prediction_arrays,
    target_ranks,
    write_predictions,
)
from ulmrec_eval.cli import app
from ulmrec_eval.schemas import ComparisonReport, EvalResult

runner = CliRunner()


def _scores(n_users: int = 40, n_items: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    scores[:, 5] = scores[:, 6]  # ties
    return scores, rng.integers(0, n_items, n_users)


# ------------------------------------------------------------------------------------------ import order
@pytest.mark.parametrize("first", ["from ulmrec_eval import evaluate_ranks", "import ulmrec_eval.compare",
                                   "from ulmrec_eval import load_predictions", "import ulmrec_eval.cli"])
def test_evaluate_is_the_function_whatever_was_imported_first(first: str, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"user_id": 1, "target": 2, "ranked": [2]}) + "\n", encoding="utf-8")
    code = (f"{first}\nfrom ulmrec_eval import evaluate\n"
            f"print(evaluate({str(path)!r}, ks=1).reports[0].metrics['recall@1'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.0"


def test_per_user_metric_is_exported() -> None:
    assert "per_user_metric" in ulmrec_eval.__all__
    assert per_user_metric([1, 3, 0], "ndcg@5").tolist() == [1.0, 0.5, 0.0]


# ------------------------------------------------------------------------------------------------ torch
def test_torch_scores_any_float_dtype_match_numpy() -> None:
    torch = pytest.importorskip("torch")
    scores, targets = _scores()
    want = target_ranks(scores, targets)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        t = torch.from_numpy(scores).to(dtype).requires_grad_(True)  # not detached: must still work
        low = torch.from_numpy(scores).to(dtype).float().numpy()     # the values as that dtype holds them
        got = target_ranks(t, torch.from_numpy(targets))
        assert got.tolist() == target_ranks(low, targets).tolist(), dtype
        if dtype in (torch.float32, torch.float64):
            assert got.tolist() == want.tolist()
    ranks = torch.from_numpy(want)
    assert compute_metrics(ranks, ks=10) == compute_metrics(want, ks=[10])
    (report,) = evaluate_ranks(ranks, ks=10)
    assert report.metrics == compute_metrics(want, ks=10)


def test_torch_candidates_take_the_array_path() -> None:
    torch = pytest.importorskip("torch")
    scores, targets = _scores(n_items=20)
    cands = np.arange(100, 120)[None, :].repeat(len(scores), 0)
    want = ranks_from_candidates(cands, scores.astype(np.float64), cands[np.arange(len(cands)), targets])
    got = ranks_from_candidates(torch.from_numpy(cands), torch.from_numpy(scores).bfloat16(),
                                torch.from_numpy(cands[np.arange(len(cands)), targets]))
    low = torch.from_numpy(scores).bfloat16().float().numpy()
    assert got.tolist() == ranks_from_candidates(cands, low, cands[np.arange(len(cands)), targets]).tolist()
    assert len(got) == len(want)
    # the (U, L) array path checks shapes as arrays (the per-user path would say "user row ...")
    with pytest.raises(ValueError, match="differ in shape"):
        ranks_from_candidates(torch.from_numpy(cands), torch.from_numpy(scores[:, :5]), torch.zeros(40))
    assert ranks_from_lists(torch.tensor([[4, 2], [2, 4]]), torch.tensor([2, 2])).tolist() == [2, 1]


def test_paired_comparison_takes_tensors() -> None:
    torch = pytest.importorskip("torch")
    a = torch.tensor([0.0, 1.0, 0.5] * 20, dtype=torch.bfloat16)
    report = ulmrec_eval.paired_comparison(a, a + 0.5, n_resamples=99)
    assert report.difference == pytest.approx(0.5)


# ------------------------------------------------------------------------------------- input checking
def test_ks_may_be_one_int() -> None:
    assert list(compute_metrics([1, 2, 0], ks=2)) == ["recall@2", "mrr@2", "ndcg@2"]
    assert evaluate_ranks([1, 2, 0], ks=2)[0].ks == [2]
    with pytest.raises(ValueError, match="positive integer"):
        compute_metrics([1], ks="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integers"):
        compute_metrics([1], ks=[2.5])  # type: ignore[list-item]


def test_evaluate_ranks_refuses_non_integer_ranks() -> None:
    with pytest.raises(ValueError, match="whole numbers"):
        evaluate_ranks([1.5, 2.0])
    with pytest.raises(ValueError, match="whole numbers"):
        compute_metrics([1.5, 2.0])
    assert evaluate_ranks([1.0, 2.0], ks=1)[0].metrics["recall@1"] == 0.5


def test_ranks_from_lists_refuses_targets_of_another_id_type() -> None:
    with pytest.raises(ValueError, match=r"user row 1 is str \('2'\) but the ranked ids are int"):
        ranks_from_lists([[1, 2], [2, 3]], [1, "2"])
    with pytest.raises(ValueError, match="ranked ids are int"):
        ranks_from_lists(np.array([[1, 2]]), np.array(["2"]))
    assert ranks_from_lists([["a", "b"], []], ["b", "c"]).tolist() == [2, 0]
    assert ranks_from_lists([[np.int64(3), 4]], [3]).tolist() == [1]  # numpy ints are ints


@pytest.mark.parametrize("bad", [123, "not-a-file-but-a-str.jsonl", [1, 2], {"user_id": 1}, None])
def test_wrong_types_are_one_value_error(bad: object) -> None:
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        evaluate(bad)  # type: ignore[arg-type]
    assert not isinstance(info.value, AttributeError)
    if not isinstance(bad, str):
        assert "predictions" in str(info.value)
        with pytest.raises(ValueError, match="predictions A"):
            compare_predictions(bad, [{"user_id": 1, "target": 2, "ranked": [2]}])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be numbers"):
        ulmrec_eval.paired_comparison([object()], [1.0])  # type: ignore[list-item]


def test_dicts_in_evaluate_and_compare() -> None:
    a = [{"user_id": u, "target": 7, "ranked": [7, 8] if u % 2 else [8, 7]} for u in range(20)]
    b = [{"user_id": u, "target": 7, "candidates": [7, 8], "scores": [1.0, 0.0]} for u in range(20)]
    assert evaluate(a, ks=1).reports[0].metrics["recall@1"] == 0.5
    comparison = compare_predictions(a, b, metrics="recall@1", n_resamples=99).comparisons[0]
    assert (comparison.mean_a, comparison.mean_b, comparison.wins) == (0.5, 1.0, 10)


def test_compare_ranks() -> None:
    report = compare_ranks(np.array([1, 0, 3, 2] * 10), [1, 1, 1, 2] * 10, metrics=["mrr@3", "hit@1"],
                           n_resamples=99)
    assert [c.metric for c in report.comparisons] == ["mrr@3", "recall@1"]
    assert report.comparisons[1].mean_a == 0.25
    assert report.comparisons[1].mean_b == 0.75
    with pytest.raises(ValueError, match="same users"):
        compare_ranks([1, 2], [1, 2, 3])


# ---------------------------------------------------------------------------------------- the writer
@pytest.mark.parametrize("suffix", [".jsonl", ".npz"])
def test_written_scores_give_the_same_metrics_as_the_arrays(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(1)
    n, width = 50, 20
    cands = rng.permuted(np.tile(np.arange(1000, 1000 + width), (n, 1)), axis=1)
    # float32 scores 1 ulp apart and exact ties: any rounding on the way would change ranks
    base = np.float32(0.1) + np.arange(width, dtype=np.float32) * np.spacing(np.float32(0.1))
    scores = np.stack([rng.permutation(base) for _ in range(n)]).astype(np.float32)
    scores[:, 3] = scores[:, 4]
    scores[0, 2] = -np.inf
    target_col = rng.integers(0, width, n)
    targets = cands[np.arange(n), target_col]
    targets[-1] = 5  # not a candidate: a miss
    want = target_ranks(scores, target_col)
    want[-1] = 0
    path = write_predictions(tmp_path / f"p{suffix}", np.arange(n), targets, candidates=cands, scores=scores,
                             source="mine", split="test", history_lengths=rng.integers(1, 30, n))
    result = evaluate(path, ks=(1, 5, 10), split="test")
    assert result.reports[0].metrics == compute_metrics(want, ks=(1, 5, 10))
    assert result.reports[0].source == "mine"
    assert result.reports[0].buckets


def test_writer_bf16_tensors_and_ranked_lists(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    scores = torch.tensor([[0.5, 0.25, 0.125], [1.0, 1.0, 0.0]], dtype=torch.bfloat16, requires_grad=True)
    path = write_predictions(tmp_path / "t.jsonl", torch.tensor([3, 4]), torch.tensor([11, 12]),
                             candidates=torch.tensor([[10, 11, 12], [10, 11, 12]]), scores=scores)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["scores"] == [0.5, 0.25, 0.125]
    assert rows[0]["user_id"] == 3
    assert evaluate(path, ks=2).reports[0].metrics["recall@2"] == 0.5
    listed = write_predictions(tmp_path / "r.jsonl", ["a", "b"], ["x", "y"], ranked=[["x"], ["z", "q", "y"]])
    assert evaluate(listed, ks=3).reports[0].metrics["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give ranked"),
    ({"candidates": [[1]]}, "go together"),
    ({"ranked": [[1], [2]], "user_ids": [1, 1]}, "repeat"),
    ({"ranked": [[1]], "targets": [1.5]}, "int or str"),
    ({"candidates": [[1]], "scores": [[float("nan")]]}, "NaN"),
])
def test_writer_refuses_bad_input(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"user_ids": [1], "targets": [1]}
    args.update(kwargs)
    if "user_ids" in kwargs:
        args["targets"] = [1, 2]
    with pytest.raises(ValueError, match=message):
        write_predictions(tmp_path / "x.jsonl", args.pop("user_ids"), args.pop("targets"), **args)
    assert not (tmp_path / "x.jsonl").exists()


# -------------------------------------------------------------------------------------------- .npz + CLI
def test_npz_in_cli_metrics_and_compare(tmp_path: Path) -> None:
    scores, targets = _scores()
    cands = np.arange(scores.shape[1])[None, :].repeat(len(scores), 0)
    ids = np.array([f"u{i}" for i in range(len(scores))])
    a = write_predictions(tmp_path / "a.npz", ids, targets, candidates=cands, scores=scores, source="a")
    b_rows = np.argsort(-scores, axis=1, kind="stable")
    b = write_predictions(tmp_path / "b.jsonl", ids[::-1], targets[::-1], ranked=b_rows[::-1])
    arrays = read_prediction_arrays(a)
    assert arrays.ranks.tolist() == target_ranks(scores, targets).tolist()
    ok = runner.invoke(app, ["metrics", str(a), "--json", "--k", "1,5"])
    assert ok.exit_code == 0, ok.output
    metrics = EvalResult.model_validate_json(ok.stdout).reports[0].metrics
    assert metrics == compute_metrics(target_ranks(scores, targets), ks=(1, 5))
    ok = runner.invoke(app, ["compare", str(a), str(b), "--json", "--metric", "ndcg@10", "--resamples", "99"])
    assert ok.exit_code == 0, ok.output
    report = ComparisonReport.model_validate_json(ok.stdout)
    assert report.comparisons[0].n_users == len(ids)


def test_bad_npz_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, user_ids=np.arange(3), targets=np.array(["a", "b", "c"]), ranked=np.zeros((3, 2), int))
    done = runner.invoke(app, ["metrics", str(bad)])
    assert done.exit_code != 0
    assert "targets are str but 'ranked' holds int ids" in str(done.exception)
    np.savez(bad, user_ids=np.arange(3), targets=np.arange(3))
    with pytest.raises(ValueError, match=r"bad\.npz: needs 'ranked'"):
        evaluate(bad)
