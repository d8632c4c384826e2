"""Training that can fail: the schedule reaches its peak inside the steps that run, decays over the run that
actually happens (steps or time budget), and a tiny model trained on a learnable rule ranks above chance."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ulmrec_align.tuning.config import LoraSettings, TrainSettings
from ulmrec_align.tuning.request import TrainRequest
from ulmrec_align.tuning.run import run_training
from ulmrec_align.tuning.schedule import BudgetSchedule

from .conftest import make_samples

#: Expected NDCG@10 of a random order of 5 candidates, the target among them.
CHANCE_5 = sum(1 / math.log2(1 + r) for r in range(1, 6)) / 5


def train_on_rule(samples: Path, model: Path, out: Path, *, steps: int, lr: float, eval_steps: int,
                  loss: str = "letters") -> Any:
    """Tune the tiny model on ``samples`` (LoRA on every linear layer, batch 8, 40 validation users)."""
    return run_training(TrainRequest(
        samples=samples, model=str(model), out=out, progress=False,
        lora=LoraSettings(r=8, alpha=16, dropout=0.0, targets=["all-linear"]),
        train=TrainSettings(max_steps=steps, batch_size=8, lr=lr, eval_steps=eval_steps, save_steps=1000,
                            valid_users=40, patience=None, seed=0, loss=loss)))  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "half"), [("cosine", 0.5), ("linear", 0.5), ("constant", 1.0)])
def test_schedule_peaks_early_and_ends_with_the_steps(kind: str, half: float) -> None:
    schedule = BudgetSchedule(kind=kind, max_steps=100, warmup_steps=None,  # type: ignore[arg-type]
                              budget_seconds=None, clock=lambda: 0.0)
    factors = [schedule(step) for step in range(101)]
    assert factors[0] == 0.0
    assert max(factors[:6]) == pytest.approx(max(factors), abs=0.01)   # peak within 5 % of the run
    assert max(factors) > 0.94                                          # linear: 0.95 at the end of warm-up
    assert factors[50] == pytest.approx(half, abs=1e-9)
    assert factors[100] == pytest.approx(0.0 if kind != "constant" else 1.0, abs=1e-9)


def test_time_budget_ends_the_decay_long_before_the_planned_steps() -> None:
    """The bug this replaces: 11,250 planned steps, 64 run in the time budget, lr never left warm-up."""
    clock = {"now": 0.0}
    schedule = BudgetSchedule(kind="cosine", max_steps=11_250, warmup_steps=10, budget_seconds=640.0,
                              clock=lambda: clock["now"])
    seen = []
    for step in range(1, 65):          # 10 s a step: the budget ends at step 64
        clock["now"] = 10.0 * step
        seen.append(schedule(step))
    assert seen[9] > 0.9               # warm-up done at step 10, near the peak
    assert seen[31] == pytest.approx(0.5, abs=0.02)   # half the budget: half the cosine
    assert seen[-1] == pytest.approx(0.0, abs=1e-9)


def test_logged_learning_rate_reaches_the_peak(samples_dir: Path, tiny_llm: Path, tmp_path: Path) -> None:
    manifest = run_training(TrainRequest(
        samples=samples_dir, model=str(tiny_llm), out=tmp_path / "T", progress=False,
        train=TrainSettings(max_steps=6, batch_size=4, lr=1e-3, eval_steps=2, save_steps=100, seed=0)))
    rates = [c.lr for c in manifest.curve]
    assert [c.step for c in manifest.curve] == [2, 4, 6]
    assert max(rates) >= 0.7e-3          # cosine at step 2 of 6, after a 5 % warm-up: 0.75 of the peak
    assert rates == sorted(rates, reverse=True)


def test_a_learnable_rule_is_learned_above_chance(tiny_llm: Path, tmp_path: Path) -> None:
    """The target is always the red candidate: after 120 steps the ranking loss is below ln 5 and the
    calibrated validation NDCG@10 of the tuned tiny model is well above chance (0.590 for 5 candidates in
    random letter order; 0.83 measured)."""
    manifest = train_on_rule(make_samples(tmp_path / "A", n_train=400, n_valid=40), tiny_llm, tmp_path / "T",
                             steps=120, lr=1e-2, eval_steps=40)
    assert abs(CHANCE_5 - 0.590) < 1e-3
    assert manifest.best_ndcg_at_10 is not None
    assert manifest.best_ndcg_at_10 > CHANCE_5 + 0.08
    assert manifest.curve[-1].loss < math.log(5) - 0.1     # a ranking loss above ln(5) learned nothing


def test_a_learnable_rule_is_learned_above_chance_with_title_answers(tiny_llm: Path, tmp_path: Path) -> None:
    """A rule of the same kind with ``answer = "title"`` (the user's code names the colour bought): the
    model writes the target's title and validation ranks the candidates by title likelihood minus the
    title prior; after 240 steps that ranking is above chance (0.743 measured, chance 0.590; the plain
    likelihood stays at chance: what the tiny model learns first is the colour's prior) and the adapter
    remembers that it answers with titles."""
    manifest = train_on_rule(make_samples(tmp_path / "A", n_train=400, n_valid=40, answer="title"), tiny_llm,
                             tmp_path / "T", steps=240, lr=2e-2, eval_steps=60)
    assert manifest.best_ndcg_at_10 is not None
    assert manifest.best_ndcg_at_10 > CHANCE_5 + 0.1
    assert manifest.prompt.answer == "title"
    assert manifest.letter_prior is None                 # no letters: nothing to calibrate


def test_the_choices_loss_learns_the_title_rule(tiny_llm: Path, tmp_path: Path) -> None:
    """The same title rule under ``--loss choices`` (a cross-entropy over the pool's title scores with the
    title prior removed, as the ranker reads them): the loss starts at ln 5 (no preference) and falls well
    below it, and after 120 steps validation ranks above chance (measured: loss 1.01, NDCG@10 0.742; with
    the prior left in the training score the loss stayed at 4-8 nats)."""
    manifest = train_on_rule(make_samples(tmp_path / "A", n_train=400, n_valid=40, answer="title"), tiny_llm,
                             tmp_path / "T", steps=120, lr=1e-2, eval_steps=60, loss="choices")
    assert manifest.best_ndcg_at_10 is not None
    assert manifest.best_ndcg_at_10 > CHANCE_5 + 0.1
    assert manifest.curve[0].loss == pytest.approx(math.log(5), abs=0.25)
    assert manifest.curve[-1].loss < math.log(5) - 0.3
