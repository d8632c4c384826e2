"""Which validation keeps its adapter: the fused score, unless W is the top of the grid (the retriever's
order, the same for every adapter); then the LLM alone decides."""

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


def test_the_llm_alone_chooses_among_adapters_the_fusion_gives_no_weight(tmp_path: Path) -> None:
    top = [ValidationScores(score=0.6385, raw=0.488, weight=100.0, retriever_only=True),
           ValidationScores(score=0.6379, raw=0.521, weight=100.0, retriever_only=True),
           ValidationScores(score=0.6381, raw=0.505, weight=100.0, retriever_only=True)]
    progress = validate_all(callback(tmp_path, top), 3)
    assert progress.best_step == 2          # the fused score alone would keep step 1
    assert progress.best_score == 0.6379
    assert progress.best_key == [0.0, 0.521]


def test_an_adapter_with_a_weight_of_its_own_beats_those_without(tmp_path: Path) -> None:
    results = [ValidationScores(score=0.6385, raw=0.53, weight=100.0, retriever_only=True),
               ValidationScores(score=0.6370, raw=0.50, weight=3.2),
               ValidationScores(score=0.6420, raw=0.49, weight=1.0),
               ValidationScores(score=0.6450, raw=0.60, weight=100.0, retriever_only=True)]
    progress = validate_all(callback(tmp_path, results), 4)
    assert progress.best_step == 3
    assert [h.fusion_weight for h in progress.history] == [100.0, 3.2, 1.0, 100.0]


def test_a_checkpoint_saved_before_the_key_resumes_on_its_score(tmp_path: Path) -> None:
    made = callback(tmp_path, [ValidationScores(score=0.60), ValidationScores(score=0.70)])
    made.restore(TuningProgress(step=10, best_score=0.65, best_step=10))
    progress = validate_all(made, 2)
    assert progress.best_step == 2
    assert progress.best_key == [1.0, 0.70]
