"""The retriever stage as a hostile user drives it: resume on other data, divergence, bad devices, truncated
files, a second writer, and kill -9 during a resumed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.retrieval.api import evaluate_retriever, load_retriever, train_retriever
from ulmrec_align.retrieval.config import LRURecConfig, RetrieverConfig, TrainConfig
from ulmrec_align.retrieval.errors import RetrieverError
from ulmrec_align.retrieval.trainer import CHECKPOINT_NAME
from ulmrec_eval.runtime.artifacts import ArtifactLockedError

from .conftest import make_dataset

OUTPUTS = ("model.safetensors", "config.json", "candidates.jsonl", "metrics.json")


def _config(**train: object) -> RetrieverConfig:
    settings: dict[str, object] = {"epochs": 2, "batch_size": 8, "checkpoint_every_steps": 2, "seed": 7,
                                   "num_threads": 1, "eval_batch_size": 16}
    settings.update(train)
    return RetrieverConfig(model=LRURecConfig(hidden_size=8, max_len=6),
                           train=TrainConfig.model_validate(settings))


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from ulmrec_align.cli import main; main()", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def _one_line_error(*args: object) -> str:
    done = _cli(*args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_resume_refuses_another_split_with_the_same_item_count(tiny: PreparedDataset, tmp_path: Path) -> None:
    other = make_dataset(seed=5)
    assert other.n_items == tiny.n_items
    assert other.manifest.split_sha256 != tiny.manifest.split_sha256
    train_retriever(tiny, tmp_path, _config(epochs=1), show_progress=False, write_outputs=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(RetrieverError, match="trained on another split") as info:
        train_retriever(other, tmp_path, _config(epochs=2), resume=True, show_progress=False)
    assert "\n" not in str(info.value)
    assert tiny.manifest.split_sha256[:12] in str(info.value)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    bigger = make_dataset(n_items=45, seed=1)  # another item count: the same one line, not a size traceback
    with pytest.raises(RetrieverError, match="trained on another split"):
        train_retriever(bigger, tmp_path, _config(epochs=2), resume=True, show_progress=False)


def test_force_starts_anew_and_replaces_the_outputs(tiny: PreparedDataset, tmp_path: Path) -> None:
    train_retriever(tiny, tmp_path, _config(epochs=1), show_progress=False)
    (tmp_path / "stray.txt").write_text("x")
    run = train_retriever(tiny, tmp_path, _config(epochs=2, seed=8), force=True, show_progress=False)
    assert run.progress.epoch == 2
    assert json.loads((tmp_path / "config.json").read_text())["config"]["train"]["seed"] == 8
    assert json.loads((tmp_path / "metrics.json").read_text())["training"]["epochs_run"] == 2


def test_a_diverging_run_stops_cleanly_keeping_the_last_good_checkpoint(tiny: PreparedDataset,
                                                                         tmp_path: Path) -> None:
    good = tmp_path / "good"
    train_retriever(tiny, good, _config(epochs=1), show_progress=False)
    outputs = {name: (good / name).read_bytes() for name in OUTPUTS}
    checkpoint = (good / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(RetrieverError, match="training diverged: non-finite") as info:
        train_retriever(tiny, good, _config(epochs=3, lr=1e4), force=True, show_progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "lower --lr" in message
    assert {name: (good / name).read_bytes() for name in OUTPUTS} == outputs  # old outputs untouched
    if (good / CHECKPOINT_NAME).exists():  # whatever checkpoint is there holds finite weights
        from safetensors.torch import load_file

        assert all(torch.isfinite(t).all() for k, t in load_file(str(good / CHECKPOINT_NAME)).items()
                   if t.is_floating_point() and k.startswith(("model.", "best.")))
    assert checkpoint  # the earlier run's checkpoint was dropped by --force, as asked

    fresh = tmp_path / "fresh"
    with pytest.raises(RetrieverError, match="training diverged"):
        train_retriever(tiny, fresh, _config(epochs=3, lr=1e4), show_progress=False)
    assert not fresh.exists() or (fresh / CHECKPOINT_NAME).exists()  # no empty or half-made folder


def test_cli_lr_10_diverges_in_one_line(tiny: PreparedDataset, tmp_path: Path) -> None:
    data = tiny.save(tmp_path / "data")
    config = tmp_path / "c.json"
    config.write_text(_config(epochs=5).model_dump_json())
    line = _one_line_error("retrieve", "train", "--data", data, "--out", tmp_path / "run", "--config", config,
                           "--lr", "1e4", "--no-progress")
    assert "training diverged" in line


@pytest.mark.parametrize("device", ["bogus", "cuda:x"])
def test_bad_device_is_one_line(tiny: PreparedDataset, tmp_path: Path, device: str) -> None:
    data = tiny.save(tmp_path / "data")
    line = _one_line_error("retrieve", "train", "--data", data, "--out", tmp_path / "run", "--device", device,
                           "--no-progress")
    assert f"--device {device!r} is not a device" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a torch without CUDA")
def test_cuda_without_cuda_is_one_line(tiny: PreparedDataset, tmp_path: Path) -> None:
    data = tiny.save(tmp_path / "data")
    line = _one_line_error("retrieve", "train", "--data", data, "--out", tmp_path / "run", "--device", "cuda")
    assert "no usable CUDA GPU" in line
    line = _one_line_error("retrieve", "eval", "--data", data, "--model", tmp_path / "m", "--device", "cuda")
    assert "no usable CUDA GPU" in line


def test_truncated_files_are_one_line(tiny: PreparedDataset, tmp_path: Path) -> None:
    data = tiny.save(tmp_path / "data")
    run = tmp_path / "run"
    train_retriever(tiny, run, _config(epochs=1), show_progress=False)
    for name in ("model.safetensors", CHECKPOINT_NAME):
        (run / name).write_bytes((run / name).read_bytes()[:100])
    line = _one_line_error("retrieve", "eval", "--data", data, "--model", run)
    assert "model.safetensors: unreadable weights (truncated or not safetensors" in line
    line = _one_line_error("retrieve", "train", "--data", data, "--out", run, "--resume", "--epochs", "2",
                           "--no-progress")
    assert "checkpoint.safetensors: unreadable checkpoint (truncated or not safetensors" in line


def test_pool_size_zero_is_refused(tiny: PreparedDataset, tmp_path: Path) -> None:
    train_retriever(tiny, tmp_path, _config(epochs=1), show_progress=False)
    with pytest.raises(RetrieverError, match="--pool-size 0"):
        evaluate_retriever(tiny, tmp_path, pool_size=0, candidates=True)
    data = tiny.save(tmp_path / "data")
    done = _cli("retrieve", "eval", "--data", data, "--model", tmp_path, "--pool-size", "0")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr


_HOLD = textwrap.dedent(
    """
    import sys, time
    from ulmrec_eval.runtime.artifacts import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_a_second_trainer_is_refused(tiny: PreparedDataset, tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        expected = f"being written by another process \\(pid {holder.pid}"
        with pytest.raises(ArtifactLockedError, match=expected):
            train_retriever(tiny, out, _config(epochs=1), show_progress=False)
    finally:
        holder.kill()
        holder.wait()


def _consistent(run: Path, dataset: PreparedDataset) -> int:
    """The outputs in ``run`` come from one and the same training run; returns its epochs_run."""
    saved = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert saved["training"]["epochs_run"] == metrics["training"]["epochs_run"]
    assert saved["training"]["steps"] == metrics["training"]["steps"]
    rows = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    test_rows = [r for r in rows if r["split"] == "test"]
    assert sum(r["target_in_candidates"] for r in test_rows) / len(test_rows) == pytest.approx(
        metrics["test"]["target_in_candidates"])
    again = evaluate_retriever(dataset, run, out_dir=run.parent / "recheck")  # the model file is theirs too
    assert again["test"]["metrics"] == pytest.approx(metrics["test"]["metrics"])
    load_retriever(run)
    return int(metrics["training"]["epochs_run"])


def test_kill_9_during_a_resumed_run_never_mixes_outputs(tmp_path: Path) -> None:
    dataset = make_dataset(n_users=60, n_items=30, seed=2)
    data = dataset.save(tmp_path / "data")
    run = tmp_path / "run"
    config = tmp_path / "c.json"
    config.write_text(_config(epochs=1, checkpoint_every_steps=1).model_dump_json())
    assert _cli("retrieve", "train", "--data", data, "--out", run, "--config", config,
                "--no-progress").returncode == 0
    assert _consistent(run, dataset) == 1
    command = [sys.executable, "-c", "from ulmrec_align.cli import main; main()", "retrieve", "train",
               "--data", str(data), "--out", str(run), "--config", str(config), "--no-progress", "--resume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    epochs = 1
    for attempt in range(4):
        epochs += 1
        process = subprocess.Popen([*command, "--epochs", str(epochs)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env)
        time.sleep(1.5 + 0.8 * attempt)  # start-up, training, then writing: a different moment each time
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert run.is_dir()
        assert all((run / name).is_file() for name in OUTPUTS)
        _consistent(run, dataset)
    done = subprocess.run([*command, "--epochs", str(epochs)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert _consistent(run, dataset) == epochs
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
