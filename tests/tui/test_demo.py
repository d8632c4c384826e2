"""`ulmrec demo`: the table from finished runs (with `ulmrec eval compare`), the packaged configs, and (slow)
the whole demo twice, the second time reusing every stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import ulmrec
from tui_fixtures import fixture_predictions

from ulmrec_app.pipeline.demo import demo_rows, with_data
from ulmrec_eval.evaluation import evaluate


def write_jsonl_rows(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _finished_run(folder: Path, shift: int, *, ranked_users: int, all_users: int) -> None:
    write_jsonl_rows(folder / "rank" / "predictions.jsonl", fixture_predictions(ranked_users, shift))
    candidates = folder / "retrieve" / "retriever" / "candidates.jsonl"
    write_jsonl_rows(candidates, fixture_predictions(all_users, 5))
    (folder / "eval").mkdir(parents=True)
    result = evaluate(fixture_predictions(ranked_users, shift), retrieved_n=20, split="test")
    (folder / "eval" / "metrics.json").write_text(result.model_dump_json())


def test_demo_table_rows_and_paired_comparison(tmp_path: Path) -> None:
    ours, base = tmp_path / "demo", tmp_path / "demo-noindex"
    _finished_run(ours, 0, ranked_users=30, all_users=50)
    _finished_run(base, 2, ranked_users=30, all_users=50)
    rows, reports = demo_rows(ours, base)
    systems = [(r.system, r.scope) for r in rows]
    assert systems == [("LRURec alone", "subset"), ("LRURec alone", "overall"),
                       ("no index", "subset"), ("no index", "overall"),
                       ("ULMRec", "subset"), ("ULMRec", "overall")]
    # the retriever row covers exactly the 30 ranked users, not all 50 of candidates.jsonl
    retriever_overall = rows[1]
    assert retriever_overall.n_users == 30
    expected = evaluate(fixture_predictions(30, 5), retrieved_n=20).scope("overall").metrics["ndcg@10"]
    assert retriever_overall.metrics["ndcg@10"] == pytest.approx(expected)
    assert set(reports) == {"ULMRec − no index", "ULMRec − LRURec", "no index − LRURec"}
    report = reports["ULMRec − no index"]
    assert report.a.endswith("demo-noindex/rank/predictions.jsonl")
    by_metric = {c.metric: c for c in report.comparisons}
    ours_ndcg = rows[5].metrics["ndcg@10"]
    base_ndcg = rows[3].metrics["ndcg@10"]
    assert by_metric["ndcg@10"].difference == pytest.approx(ours_ndcg - base_ndcg)
    assert (ours / "compare.json").is_file()
    saved = json.loads((ours / "compare.json").read_text())
    assert set(saved["comparisons"]) == set(reports)
    # the LLM against the retriever's order of the same candidates: the difference is the table's
    vs_order = {c.metric: c for c in reports["ULMRec − LRURec"].comparisons}["ndcg@10"]
    assert vs_order.difference == pytest.approx(ours_ndcg - rows[1].metrics["ndcg@10"])


def test_demo_with_real_data_maps_users_to_align_and_rank(tmp_path: Path) -> None:
    from ulmrec_app.pipeline.demo import demo_configs

    recbole = tmp_path / "beauty"
    recbole.mkdir()
    (recbole / "beauty.inter").write_text("user_id:token\titem_id:token\n")
    ours, _ = demo_configs()
    real = with_data(ours, recbole, 50)
    assert real.data == {"prepare": {"k_core": 5, "source": "recbole", "path": str(recbole.resolve()),
                                     "max_users": 50}}
    assert real.align["max_users"] == 50
    assert real.rank["limit"] == 50
    synthetic = with_data(ours, None, 80)
    assert synthetic.data["synthetic"]["users"] == 80


def test_demo_without_results_is_one_clear_error(tmp_path: Path) -> None:
    result = ulmrec("demo", "--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"ulmrec: error: --data {tmp_path / 'missing'}: no such file or folder"


@pytest.mark.slow
def test_demo_end_to_end_twice(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = ulmrec("demo", "--runs", str(runs), "--users", "60", timeout=3600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "ULMRec" in first.stdout
    assert "no index" in first.stdout
    assert "LRURec alone" in first.stdout
    second = ulmrec("demo", "--runs", str(runs), "--users", "60", timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "running" not in second.stderr
    assert second.stderr.count("skipped: unchanged") >= 12
    assert second.stdout.splitlines()[-8:] == first.stdout.splitlines()[-8:]
