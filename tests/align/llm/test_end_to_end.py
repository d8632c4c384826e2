"""The four `ulmrec align` commands chained on real outputs: build (added code tokens) → train → rank → the
eval reader; every stage reads the previous stage's real files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec

from ulmrec_align.ranking.loading import load_ranking_model
from ulmrec_align.tasks.schema import read_manifest
from ulmrec_eval.evaluation import load_predictions
from ulmrec_index.artifact import load_index


def test_build_train_rank_with_added_code_tokens(pipeline: Pipeline, tiny_llm: Path, tmp_path: Path) -> None:
    samples, tuned, ranked = tmp_path / "align", tmp_path / "train", tmp_path / "rank.jsonl"
    ulmrec("align", "build", "--data", pipeline.data, "--index", pipeline.index, "--candidates",
           pipeline.candidates, "--out", samples, "--model", tiny_llm, "--index-tokens", "added",
           "--n-candidates", "6", "--history-items", "3", "--title-tokens", "6", "--max-users", "12",
           "--valid-users", "4", "--no-progress")
    assert read_manifest(samples).config.index_tokens == "added"
    ulmrec("align", "train", "--samples", samples, "--model", tiny_llm, "--out", tuned, "--max-steps", "2",
           "--batch-size", "2", "--eval-steps", "2", "--valid-users", "4", "--no-progress")
    history = json.loads((tuned / "train_manifest.json").read_text())["history"]
    assert history                                                  # alignment measured at each validation
    for point in history:
        assert set(point["task_exact"]) == set(point["task_loss"]) == {"pref_to_index", "history_to_index"}
        assert all(0.0 <= v <= 1.0 for v in point["task_exact"].values())
        assert all(v > 0 for v in point["task_loss"].values())
    quiet = tmp_path / "train-no-codes"                             # --code-valid-users 0: ranking only
    ulmrec("align", "train", "--samples", samples, "--model", tiny_llm, "--out", quiet, "--max-steps", "1",
           "--batch-size", "2", "--eval-steps", "1", "--valid-users", "4", "--code-valid-users", "0",
           "--no-progress")
    quiet_history = json.loads((quiet / "train_manifest.json").read_text())["history"]
    assert quiet_history
    assert all(not p["task_exact"] and not p["task_loss"] for p in quiet_history)
    assert all(p["ndcg_at_10"] is not None for p in quiet_history)
    ranker = load_ranking_model(tuned)
    assert ranker.index_tokens == "added"
    assert ranker.prompt.n_candidates == 6                          # prompt settings travel with the model
    index = load_index(pipeline.index)
    first = next(iter(index.codes))
    assert index.token(first).startswith("<a_")
    assert ranker.tokenizer.convert_tokens_to_ids("<a_0>") != ranker.tokenizer.unk_token_id
    proc = ulmrec("align", "rank", "--model", tuned, "--data", pipeline.data, "--index", pipeline.index,
                  "--candidates", pipeline.candidates, "--split", "test", "--out", ranked, "--limit", "5",
                  "--no-progress")
    assert "ranked 5 users" in proc.stderr
    predictions = load_predictions(ranked, split="test")
    assert len(predictions) == 5
    assert all(len(p.candidates or []) == 6 for p in predictions)
