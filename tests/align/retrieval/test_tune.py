"""`retrieve tune`: a seeded search selected on validation NDCG@10 only, within a budget, written whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.api import load_retriever
from ulmrec_align.retrieval.cli import app
from ulmrec_align.retrieval.config import LRURecConfig, RetrieverConfig, TrainConfig
from ulmrec_align.retrieval.tune import (
    DEFAULT_SPACE,
    TuneReport,
    apply_settings,
    trial_settings,
    tune_retriever,
)
from ulmrec_eval.runtime.artifacts import ArtifactExistsError

SPACE = {"dropout": (0.1, 0.4), "lr": (1e-3, 3e-3), "hidden_size": (8, 16)}


def _base() -> RetrieverConfig:
    return RetrieverConfig(model=LRURecConfig(hidden_size=8, max_len=6, dropout=0.4, lru_dropout=0.4),
                           train=TrainConfig(epochs=2, batch_size=8, seed=7, num_threads=1,
                                             eval_batch_size=16))


def test_trial_order_starts_with_the_base_and_is_seeded() -> None:
    base = _base()
    first = trial_settings(base, SPACE, seed=0)
    assert first[0] == {"dropout": 0.4, "lr": 1e-3, "hidden_size": 8.0}
    assert len(first) == 8                                       # the base is a grid point: 2 x 2 x 2
    assert trial_settings(base, SPACE, seed=0) == first
    assert trial_settings(base, SPACE, seed=1) != first
    config = apply_settings(base, {"dropout": 0.2, "lr": 2e-3, "weight_decay": 0.05, "hidden_size": 32})
    assert (config.model.dropout, config.model.lru_dropout, config.model.hidden_size) == (0.2, 0.2, 32)
    assert (config.train.lr, config.train.weight_decay, config.train.best_metric) == (2e-3, 0.05, "ndcg@10")
    assert set(DEFAULT_SPACE) == {"dropout", "lr", "weight_decay", "hidden_size"}


def test_tune_selects_on_validation_and_writes_a_whole_folder(tiny: PreparedDataset, tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    report = tune_retriever(tiny, out, _base(), max_trials=3, max_minutes=None, space=SPACE)
    assert [t.index for t in report.trials] == [0, 1, 2]
    scores = {t.index: t.valid_score for t in report.trials}
    assert report.best == max(scores, key=lambda i: (scores[i], -i))
    saved = TuneReport.model_validate_json((out / "tune.json").read_text())
    assert saved == report
    assert sorted(p.name for p in out.iterdir()) == ["candidates.jsonl", "config.json", "metrics.json",
                                                     "model.safetensors", "tune.json"]
    for trial in report.trials:  # the trials never computed test figures: no metrics, no candidates
        names = {p.name for p in Path(trial.folder).iterdir()}
        assert "metrics.json" not in names
        assert "candidates.jsonl" not in names
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"valid", "test"}
    best = report.trials[report.best]
    assert metrics["valid"]["metrics"]["ndcg@10"] == pytest.approx(best.valid_score)  # the same model
    _, config, _ = load_retriever(out)
    assert config.model.hidden_size == int(best.settings["hidden_size"])
    with pytest.raises(ArtifactExistsError, match="exists; pass --force"):
        tune_retriever(tiny, out, _base(), max_trials=1, space=SPACE)
    again = tune_retriever(tiny, out, _base(), max_trials=1, space=SPACE, force=True)
    assert len(again.trials) == 1


def test_the_budget_stops_the_search(tiny: PreparedDataset, tmp_path: Path) -> None:
    report = tune_retriever(tiny, tmp_path / "t", _base(), max_minutes=0.002, space=SPACE)
    assert 1 <= len(report.trials) < 8


def test_cli_tune(tiny: PreparedDataset, tmp_path: Path) -> None:
    data = tiny.save(tmp_path / "data")
    config = tmp_path / "base.json"
    config.write_text(_base().model_dump_json())
    result = CliRunner().invoke(app, ["tune", "--data", str(data), "--out", str(tmp_path / "o"), "--config",
                                      str(config), "--max-trials", "2", "--max-minutes", "5"])
    assert result.exit_code == 0, result.output
    assert "selected on validation ndcg@10" in result.output
    assert len(json.loads((tmp_path / "o" / "tune.json").read_text())["trials"]) == 2
    # a long search is not silent: each trial's start, epochs and result are one line each
    lines = result.output.splitlines()
    for trial in (0, 1):
        assert any(line.startswith(f"trial {trial}: {{") for line in lines)
        assert sum(line.startswith(f"  trial {trial} epoch ") for line in lines) == 2
        assert any(line.startswith(f"trial {trial}: valid ndcg@10 ") for line in lines)


def _tensors(path: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_a_killed_search_resumes_where_it_stopped(tiny: PreparedDataset, tmp_path: Path) -> None:
    """Finished trials are kept (not retrained), a trial killed after a checkpoint continues from it, and the
    result is the search an uninterrupted run gives."""
    import shutil

    import torch

    whole = tune_retriever(tiny, tmp_path / "whole", _base(), max_trials=3, max_minutes=None, space=SPACE)
    out = tmp_path / "killed"
    tune_retriever(tiny, out, _base(), max_trials=2, max_minutes=None, space=SPACE)
    trials = tmp_path / "killed.trials"
    # as if killed during trial 1 (its checkpoint written, its result not) and before the output was written
    shutil.rmtree(out)
    (trials / "001" / "trial.json").unlink()
    first_model = (trials / "000" / "model.safetensors").stat().st_mtime_ns
    resumed = tune_retriever(tiny, out, _base(), max_trials=3, max_minutes=None, space=SPACE, resume=True)
    assert (trials / "000" / "model.safetensors").stat().st_mtime_ns == first_model   # not retrained
    assert [t.index for t in resumed.trials] == [0, 1, 2]
    assert [t.valid_score for t in resumed.trials] == [t.valid_score for t in whole.trials]
    assert resumed.best == whole.best
    a, b = _tensors(out / "model.safetensors"), _tensors(tmp_path / "whole" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # type: ignore[arg-type]


def test_resume_refuses_another_search(tiny: PreparedDataset, tmp_path: Path) -> None:
    from ulmrec_align.retrieval.errors import RetrieverError

    out = tmp_path / "t"
    with pytest.raises(RetrieverError, match="nothing to resume"):
        tune_retriever(tiny, out, _base(), max_trials=1, space=SPACE, resume=True)
    tune_retriever(tiny, out, _base(), max_trials=1, max_minutes=None, space=SPACE)
    import shutil

    shutil.rmtree(out)
    with pytest.raises(RetrieverError, match="cannot resume: --seed differs"):
        tune_retriever(tiny, out, _base(), max_trials=1, space=SPACE, resume=True, seed=5)
    with pytest.raises(RetrieverError, match="cannot resume: the searched grid differs"):
        tune_retriever(tiny, out, _base(), max_trials=1, space={"dropout": (0.1, 0.2)}, resume=True)
    other_base = _base().model_copy(update={"train": _base().train.model_copy(update={"seed": 8})})
    with pytest.raises(RetrieverError, match="cannot resume: the base config"):
        tune_retriever(tiny, out, other_base, max_trials=1, space=SPACE, resume=True)
    report = tune_retriever(tiny, out, _base(), max_trials=2, max_minutes=None, space=SPACE, resume=True)
    assert len(report.trials) == 2                                   # a larger --max-trials goes on
