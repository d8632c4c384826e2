"""Which validation keeps its adapter: for relevance answers the LLM alone (the fused score moves only where
the LLM reorders the retriever's near-ties, and differs between adapters by noise), the fused score breaking
ties; for the other heads the score the test ranks by."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerControl

from ulmrec_align.tuning.callbacks import TuningCallback, ValidationScores
from ulmrec_align.tuning.checkpoints import TuningProgress


def callback(tmp_path: Path, results: list[ValidationScores]) -> TuningCallback:
    queue = iter(results)
    return TuningCallback(run_dir=tmp_path, validate=lambda model: next(queue), every=1, patience=None,
                          max_seconds=None, is_main=False, samples_counter=lambda: 0)


def validate_all(made: TuningCallback, steps: int) -> Any:
    for step in range(1, steps + 1):
        made._run_validation(model=None, step=step, control=TrainerControl())
    return made.progress


def test_the_llm_alone_selects_among_relevance_adapters(tmp_path: Path) -> None:
    # measured on the demo: a near-random LLM earned W = 31.6 on a few users' near-ties (fused 0.6410)
    results = [ValidationScores(score=0.6410, raw=0.457, weight=31.6),
               ValidationScores(score=0.6379, raw=0.521, weight=100.0),
               ValidationScores(score=0.6402, raw=0.505, weight=25.1),
               ValidationScores(score=0.6390, raw=0.521, weight=100.0)]
    progress = validate_all(callback(tmp_path, results), 4)
    assert progress.best_step == 4          # the fused score alone would keep step 1; ties on the LLM: fused
    assert progress.best_score == 0.6390
    assert [h.fusion_weight for h in progress.history] == [31.6, 100.0, 25.1, 100.0]


def test_letter_and_title_heads_select_on_their_score(tmp_path: Path) -> None:
    results = [ValidationScores(score=0.30, raw=0.50), ValidationScores(score=0.35, raw=0.20)]
    assert validate_all(callback(tmp_path, results), 2).best_step == 2


def test_a_resumed_run_compares_with_the_best_validation_it_recorded(tmp_path: Path) -> None:
    first = callback(tmp_path, [ValidationScores(score=0.64, raw=0.50, weight=10.0)])
    saved = validate_all(first, 1).model_copy(deep=True)
    resumed = callback(tmp_path, [ValidationScores(score=0.66, raw=0.49, weight=5.0),
                                  ValidationScores(score=0.60, raw=0.51, weight=100.0)])
    resumed.restore(TuningProgress.model_validate(saved.model_dump()))
    for step in (2, 3):
        resumed._run_validation(model=None, step=step, control=TrainerControl())
    assert resumed.progress.best_step == 3
    assert resumed.progress.bad_validations == 0
