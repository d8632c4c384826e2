"""One draw of negatives per epoch (``align build --negative-draws K``): :class:`DrawSampler` gives epoch e
the rows of draw e mod K (each once) and every row of the tasks drawn once; ``align train`` on such samples
counts one draw per epoch in its steps and schedule, keeps the draw when it resumes mid-epoch, and trains on
samples without draws as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from ulmrec_align.tuning.config import LoraSettings, TrainSettings, read_train_manifest
from ulmrec_align.tuning.data import DrawSampler, EncodedDataset
from ulmrec_align.tuning.request import TrainRequest, partial_dir
from ulmrec_align.tuning.run import run_training
from ulmrec_eval.runtime.errors import InputError

from .conftest import make_samples

#: 3 prefixes of next_item (task 0) in 4 draws, and 2 rows of a task drawn once (task 1).
DRAWS = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0, 0]
TASKS = [0] * 12 + [1, 1]


@pytest.mark.parametrize("epoch", range(9))
def test_epoch_e_takes_draw_e_mod_k_and_every_row_of_the_other_tasks_once(epoch: int) -> None:
    sampler = DrawSampler(draws=DRAWS, tasks=TASKS, seed=7)
    sampler.set_epoch(epoch)
    rows = list(sampler)
    assert len(rows) == len(sampler) == 5 == len(set(rows))
    assert sorted(DRAWS[i] for i in rows if TASKS[i] == 0) == [epoch % 4] * 3
    assert sorted(i for i in rows if TASKS[i] == 1) == [12, 13]
    # every process (another sampler of the same seed) takes the same order
    again = DrawSampler(draws=DRAWS, tasks=TASKS, seed=7)
    assert again.epoch_rows(epoch) == rows


def test_the_order_is_shuffled_by_seed_and_epoch() -> None:
    sampler = DrawSampler(draws=[0] * 20 + [1] * 20, tasks=[0] * 40, seed=0)
    assert sampler.epoch_rows(0) != sampler.epoch_rows(2)             # the same draw, another order
    assert sampler.epoch_rows(0) != DrawSampler(draws=[0] * 20 + [1] * 20, tasks=[0] * 40,
                                                seed=1).epoch_rows(0)
    assert sorted(sampler.epoch_rows(0)) == list(range(20))


def test_the_docstring_example_holds() -> None:
    from support.doctests import check_doctests

    check_doctests("ulmrec_align.tuning.data")


def test_draws_of_unequal_size_are_refused() -> None:
    with pytest.raises(InputError, match=r"different numbers of samples \(3, 2\)"):
        DrawSampler(draws=[0, 0, 0, 1, 1], tasks=[0] * 5, seed=0)


def test_samples_without_draws_keep_the_trainers_own_sampler() -> None:
    rows = [{"input_ids": [1, 2], "labels": [-100, 2], "task_id": 0}] * 3
    assert not EncodedDataset(rows, ["next_item"]).redrawn
    assert EncodedDataset(rows, ["next_item"]).draws == [0, 0, 0]
    assert EncodedDataset(rows, ["next_item"], [0, 1, 1]).redrawn


def _drawn_samples(folder: Path, *, draws: int = 2) -> Path:
    """``make_samples``' 24 training prefixes, each in ``draws`` draws (another pool and letter order per
    draw, as `align build --negative-draws` writes them)."""
    from ulmrec_align.tasks.schema import AlignmentSample
    from ulmrec_eval.runtime.io import atomic_write_jsonl

    rows: list[AlignmentSample] = []
    for draw in range(draws):
        made = make_samples(folder.parent / f"draw-{draw}", seed=draw)
        rows += [AlignmentSample.model_validate_json(line).model_copy(update={"draw": draw})
                 for line in (made / "train.jsonl").read_text().splitlines()]
    make_samples(folder)
    atomic_write_jsonl(folder / "train.jsonl", rows)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["negative_draws"] = draws
    manifest["counts"]["train"]["next_item"] = len(rows)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


class _Epochs:
    """Records, for every pass the Trainer starts, its epoch and the draws of the rows it yields."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, dataset_draws: list[int]) -> None:
        self.seen: list[tuple[int, set[int], int]] = []
        real = DrawSampler.__iter__

        def recording(sampler: DrawSampler) -> Any:
            rows = list(real(sampler))
            self.seen.append((sampler.epoch, {dataset_draws[i] for i in rows}, len(rows)))
            return iter(rows)

        monkeypatch.setattr(DrawSampler, "__iter__", recording)


def _request(samples: Path, model: Path, out: Path, **train: Any) -> TrainRequest:
    settings = {"epochs": 2, "save_steps": 3, "eval_steps": 6, "batch_size": 4, "lr": 1e-3, "patience": None,
                "scheduler": "linear", "warmup_steps": 0, **train}
    return TrainRequest(samples=samples, model=str(model), out=out, progress=False, lora=LoraSettings(),
                        train=TrainSettings(**settings))


def test_training_takes_one_draw_per_epoch_in_its_steps_and_schedule(tiny_llm: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    samples = _drawn_samples(tmp_path / "A")
    epochs = _Epochs(monkeypatch, [0] * 24 + [1] * 24)
    manifest = run_training(_request(samples, tiny_llm, tmp_path / "T"))
    # 2 epochs of one draw (24 prefixes, batch 4): 12 steps, not the 24 of both draws in every epoch
    assert manifest.steps == 12
    assert manifest.samples_seen == 48
    assert epochs.seen == [(0, {0}, 24), (1, {1}, 24)]
    # the linear decay is sized to those 12 steps: the last step trains at 1/12 of the peak (with 24 planned
    # steps it would still be at 13/24)
    assert manifest.curve[-1].step == 12
    assert manifest.curve[-1].lr == pytest.approx(1e-3 / 12)
    assert read_train_manifest(tmp_path / "T").samples_config["negative_draws"] == 2
    assert manifest.train_samples == 48


class _StopAfterSave(TrainerCallback):
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 9:
            raise RuntimeError("stopped after the checkpoint of step 9")


def test_a_run_resumed_mid_epoch_keeps_that_epochs_draw(tiny_llm: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    samples = _drawn_samples(tmp_path / "A")
    out = tmp_path / "T"
    with pytest.raises(RuntimeError, match="step 9"):
        run_training(_request(samples, tiny_llm, out), callbacks=[_StopAfterSave()])
    assert (partial_dir(out) / "checkpoint-9").is_dir()
    epochs = _Epochs(monkeypatch, [0] * 24 + [1] * 24)
    manifest = run_training(_request(samples, tiny_llm, out).model_copy(update={"resume": True}))
    assert manifest.steps == 12
    assert epochs.seen == [(1, {1}, 24)]   # step 9 is 3 steps into epoch 1: draw 1, its first batches skipped


def test_group_by_length_is_refused_with_several_draws(tiny_llm: Path, tmp_path: Path) -> None:
    samples = _drawn_samples(tmp_path / "A")
    with pytest.raises(InputError, match="--group-by-length cannot keep one draw of negatives per epoch"):
        run_training(_request(samples, tiny_llm, tmp_path / "T", group_by_length=True))
    assert not partial_dir(tmp_path / "T").exists()


def test_samples_without_draws_train_as_before(samples_dir: Path, tiny_llm: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples without draws (the lines of before the option: no `draw`): the Trainer's own sampler."""
    lines = (samples_dir / "train.jsonl").read_text().splitlines()
    assert all("draw" not in json.loads(line) for line in lines)
    epochs = _Epochs(monkeypatch, [])
    manifest = run_training(_request(samples_dir, tiny_llm, tmp_path / "T", epochs=1))
    assert manifest.steps == 6
    assert manifest.samples_seen == 24
    assert epochs.seen == []   # the Trainer's own sampler
