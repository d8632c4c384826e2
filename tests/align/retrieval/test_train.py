"""Training: bit-exact resumption after an interruption, determinism, checkpoint format, errors, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.api import evaluate_retriever, load_retriever, train_retriever
from ulmrec_align.retrieval.cli import app
from ulmrec_align.retrieval.config import LRURecConfig, RetrieverConfig, TrainConfig
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.trainer import CHECKPOINT_NAME, RetrieverProgress


def _config(**train: object) -> RetrieverConfig:
    settings: dict[str, object] = {"epochs": 3, "batch_size": 8, "checkpoint_every_steps": 2, "seed": 7,
                                   "num_threads": 1, "eval_batch_size": 16}
    settings.update(train)
    return RetrieverConfig(model=LRURecConfig(hidden_size=8, max_len=6),
                           train=TrainConfig.model_validate(settings))


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> None:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys
    assert keys == [k for k in b if k.startswith(prefix)]
    for key in keys:
        assert torch.equal(a[key], b[key]), key


class _StopAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, progress: RetrieverProgress) -> None:
        if progress.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["mid_first_epoch", "before_validation", "mid_second_epoch"])
def test_interrupted_and_resumed_run_reaches_the_same_weights(tiny: PreparedDataset, tmp_path: Path,
                                                               where: str) -> None:
    config = _config()
    full = train_retriever(tiny, tmp_path / "a", config, show_progress=False)
    steps_per_epoch = full.progress.global_step // full.progress.epoch
    assert steps_per_epoch > 4
    stop_step = {"mid_first_epoch": 3, "before_validation": steps_per_epoch,
                 "mid_second_epoch": steps_per_epoch + 3}[where]
    with pytest.raises(KeyboardInterrupt):
        train_retriever(tiny, tmp_path / "b", config, show_progress=False, on_step=_StopAt(stop_step))
    state = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    assert state["progress"]["global_step"] == stop_step
    assert not (tmp_path / "b" / "model.safetensors").exists()
    resumed = train_retriever(tiny, tmp_path / "b", config, resume=True, show_progress=False)
    assert resumed.progress.global_step == full.progress.global_step
    assert [h["valid"] for h in resumed.progress.history] == [h["valid"] for h in full.progress.history]
    a = _tensors(tmp_path / "a" / CHECKPOINT_NAME)
    b = _tensors(tmp_path / "b" / CHECKPOINT_NAME)
    for prefix in ("model.", "best.", "optim."):
        _assert_same_tensors(a, b, prefix)
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    _assert_same_tensors(_tensors(a_dir / "model.safetensors"), _tensors(b_dir / "model.safetensors"))
    assert (a_dir / "candidates.jsonl").read_text() == (b_dir / "candidates.jsonl").read_text()


def test_training_is_deterministic_under_a_seed(tiny: PreparedDataset, tmp_path: Path) -> None:
    runs = [train_retriever(tiny, tmp_path / name, _config(epochs=2, seed=seed), show_progress=False,
                            write_outputs=False) for name, seed in (("x", 1), ("y", 1), ("z", 2))]
    x, y, z = (_tensors(tmp_path / name / "model.safetensors") for name in "xyz")
    _assert_same_tensors(x, y)
    assert not torch.equal(x["item_embedding.weight"], z["item_embedding.weight"])
    def without_time(history: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in h.items() if k != "elapsed_seconds"} for h in history]

    assert without_time(runs[0].progress.history) == without_time(runs[1].progress.history)


def test_training_learns_the_sequential_signal(tmp_path: Path) -> None:
    from .conftest import make_dataset

    dataset = make_dataset(n_users=120, n_items=40, seed=3)
    run = train_retriever(dataset, tmp_path / "run", _config(epochs=6, lr=5e-3, batch_size=16),
                          show_progress=False)
    history = run.progress.history
    assert history[-1]["loss"] < history[0]["loss"]
    # users step +1/+2 through item ids: a trained model must beat the random-guess Recall@10 (~10/40)
    assert run.metrics["test"]["metrics"]["recall@10"] > 0.4
    test = run.metrics["test"]
    assert test["target_in_candidates"] == pytest.approx(test["metrics"]["recall@20"])


def test_checkpoint_is_safetensors_with_json_state(tiny: PreparedDataset, tmp_path: Path) -> None:
    train_retriever(tiny, tmp_path, _config(epochs=1), show_progress=False, write_outputs=False)
    raw = (tmp_path / CHECKPOINT_NAME).read_bytes()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_length])               # a plain safetensors header, no pickle
    assert header["__metadata__"]["format"] == "ulmrec-retriever-checkpoint"
    state = json.loads(header["__metadata__"]["state"])
    assert state["schema_version"] == 1
    assert state["progress"]["epoch"] == 1
    assert state["progress"]["finished"] is True
    with safe_open(str(tmp_path / CHECKPOINT_NAME), framework="pt") as handle:
        keys = set(handle.keys())
    assert "rng.torch" in keys
    assert any(k.startswith("optim.0.exp_avg_sq") for k in keys)
    assert any(k.startswith("best.") for k in keys)


def test_resume_errors(tiny: PreparedDataset, tmp_path: Path) -> None:
    with pytest.raises(RetrieverError, match="no checkpoint"):
        train_retriever(tiny, tmp_path, _config(epochs=1), resume=True, show_progress=False)
    train_retriever(tiny, tmp_path, _config(epochs=1), show_progress=False, write_outputs=False)
    with pytest.raises(RetrieverError, match="exists; pass --resume to continue it, --force"):
        train_retriever(tiny, tmp_path, _config(epochs=1), show_progress=False)
    with pytest.raises(RetrieverError, match="different model/training config"):
        train_retriever(tiny, tmp_path, _config(epochs=1, lr=0.5), resume=True, show_progress=False)
    # a longer run may continue a finished one: epochs is not part of the training identity
    more = train_retriever(tiny, tmp_path, _config(epochs=2), resume=True, show_progress=False,
                           write_outputs=False)
    assert more.progress.epoch == 2


def test_eval_refuses_another_dataset(tiny: PreparedDataset, tmp_path: Path) -> None:
    from .conftest import make_dataset

    train_retriever(tiny, tmp_path, _config(epochs=1), show_progress=False, write_outputs=False)
    with pytest.raises(RetrieverError, match="another dataset"):
        evaluate_retriever(make_dataset(seed=5), tmp_path)
    with pytest.raises(RetrieverError, match="not a retriever folder"):
        load_retriever(tmp_path / "missing")


def test_cli_train_then_eval(tiny: PreparedDataset, tmp_path: Path) -> None:
    data = tiny.save(tmp_path / "data")
    config_file = tmp_path / "retriever.json"
    config_file.write_text(_config().model_dump_json())
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--config",
                                 str(config_file), "--epochs", "2", "--pool-size", "5", "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in ("model.safetensors", "config.json", "candidates.jsonl", "metrics.json", CHECKPOINT_NAME):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"valid", "test", "training", "schema_version"}
    expected_keys = {f"{m}@{k}" for m in ("recall", "mrr", "ndcg") for k in (1, 5, 10, 20)}
    assert set(metrics["test"]["metrics"]) == expected_keys
    assert metrics["training"]["epochs_run"] == 2
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * tiny.n_users
    assert {r["split"] for r in rows} == {"valid", "test"}
    assert all(len(r["candidates"]) == 5 for r in rows)
    assert set(rows[0]) == {"schema_version", "user_id", "raw_user_id", "split", "candidates", "scores",
                            "target", "target_in_candidates", "history_length"}

    result = runner.invoke(app, ["eval", "--data", str(data), "--model", str(out),
                                 "--out", str(tmp_path / "ev"), "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)
    for split in ("valid", "test"):
        assert again[split]["metrics"] == pytest.approx(metrics[split]["metrics"])
    assert not (tmp_path / "ev" / "candidates.jsonl").exists()

    result = runner.invoke(app, ["eval", "--data", str(data), "--model", str(out), "--out",
                                 str(tmp_path / "ev3"), "--candidates", "--pool-size", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pool_size"] == 3
    rows = [json.loads(line) for line in (tmp_path / "ev3" / "candidates.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * tiny.n_users
    assert all(len(r["candidates"]) == 3 for r in rows)


def test_cli_module_does_not_import_torch() -> None:
    code = "import sys, ulmrec_align.retrieval.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ctrl_c_in_a_real_process_leaves_a_resumable_checkpoint(tmp_path: Path) -> None:
    """SIGINT to `ulmrec-align retrieve train`: exit 130, a checkpoint at a step boundary, then --resume."""
    import signal
    import time

    from .conftest import make_dataset

    data = make_dataset(n_users=120, n_items=40, seed=1, max_length=12).save(tmp_path / "data")
    config_file = tmp_path / "retriever.json"
    config_file.write_text(_config(epochs=2, checkpoint_every_steps=1, batch_size=4).model_dump_json())
    out = tmp_path / "run"
    command = [sys.executable, "-c", "from ulmrec_align.cli import main; main()", "retrieve", "train",
               "--data", str(data), "--out", str(out), "--config", str(config_file), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    assert stderr.strip().splitlines()[-1].startswith("Interrupted: checkpoint saved in")  # its one last line
    assert "Interrupted.\n" not in stderr
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["progress"]["global_step"] > 0
    assert not state["progress"]["finished"]
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "candidates.jsonl").is_file()
    assert json.loads((out / "checkpoint.json").read_text())["progress"]["epoch"] == 2


def test_every_epoch_is_a_pipeline_progress_event(tiny: PreparedDataset, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ulmrec_eval.runtime.events import read_events

    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("ULMREC_EVENTS", str(events_file))
    monkeypatch.setenv("ULMREC_STAGE", "retrieve")
    run = train_retriever(tiny, tmp_path / "run", _config(epochs=3), show_progress=False, write_outputs=False)
    events = read_events(events_file)
    assert [e.step for e in events] == [1, 2, 3]
    assert {e.total for e in events} == {3}
    assert {e.stage for e in events} == {"retrieve"}
    for event, entry in zip(events, run.progress.history, strict=True):
        assert event.loss == pytest.approx(entry["loss"])
        assert event.metric == pytest.approx({f"valid/{k}": v for k, v in entry["valid"].items()})
        assert event.message is not None
        assert event.message.startswith(f"epoch {entry['epoch']}: loss")
