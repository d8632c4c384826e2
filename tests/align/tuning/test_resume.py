"""Kill -9 after a checkpoint, then --resume: the adapter weights equal an uninterrupted run's (torch.equal),
and the resume reads optimizer/scheduler/RNG state from safetensors + JSON (no torch.load, no pickle)."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from ulmrec_align.tuning.config import TrainSettings
from ulmrec_align.tuning.request import TrainRequest, partial_dir
from ulmrec_align.tuning.run import run_training

SETTINGS = {"max_steps": 8, "save_steps": 2, "eval_steps": 2, "batch_size": 4, "lr": 1e-3, "patience": None,
            "keep_checkpoints": 2}


class CaptureFinal(TrainerCallback):
    """Keeps a copy of the trainable weights when training ends (the kept adapter may be an earlier one)."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] = {}

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.weights = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from transformers import TrainerCallback
    from ulmrec_align.tuning.config import TrainSettings
    from ulmrec_align.tuning.request import TrainRequest
    from ulmrec_align.tuning.run import run_training

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 4:
                os.kill(os.getpid(), signal.SIGKILL)

    samples, model, out, settings = sys.argv[1:5]
    request = TrainRequest(samples=Path(samples), model=model, out=Path(out), progress=False,
                           train=TrainSettings.model_validate_json(settings))
    run_training(request, callbacks=[KillAfterSave()])
""")


def test_resume_after_sigkill_equals_an_uninterrupted_run(samples_dir: Path, tiny_llm: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TrainSettings(**SETTINGS)
    reference = CaptureFinal()
    whole = run_training(TrainRequest(samples=samples_dir, model=str(tiny_llm), out=tmp_path / "whole",
                                      progress=False, train=settings), callbacks=[reference])

    out = tmp_path / "killed"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.run([sys.executable, str(script), str(samples_dir), str(tiny_llm), str(out),
                            settings.model_dump_json()], capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    run = partial_dir(out)
    assert not out.exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint-")) == \
        ["checkpoint-2", "checkpoint-4"]
    assert not [p for p in run.rglob("training_args.bin")]
    pickled = [p.name for p in run.rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl")]
    assert pickled == []
    assert (run / "checkpoint-4" / "optimizer.safetensors").is_file()
    assert (run / "checkpoint-4" / "rng_state.safetensors").is_file()

    loads: list[dict[str, Any]] = []
    real_load = torch.load

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        loads.append(kwargs)
        return real_load(*args, **kwargs)

    def no_pickle(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used while resuming")

    monkeypatch.setattr(torch, "load", recording_load)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    resumed_final = CaptureFinal()
    resumed = run_training(TrainRequest(samples=samples_dir, model=str(tiny_llm), out=out, progress=False,
                                        train=settings, resume=True), callbacks=[resumed_final])
    assert loads == []      # optimizer, scheduler and RNG state came from safetensors + JSON

    assert resumed_final.weights.keys() == reference.weights.keys()
    assert reference.weights
    for name, value in reference.weights.items():
        assert torch.equal(resumed_final.weights[name], value), name
    assert resumed.history == whole.history
    assert resumed.best_step == whole.best_step
    assert (resumed.steps, resumed.samples_seen, resumed.tokens_seen) == (whole.steps, whole.samples_seen,
                                                                          whole.tokens_seen)
    from safetensors.torch import load_file

    kept_whole = load_file(tmp_path / "whole" / "adapter" / "adapter_model.safetensors")
    kept_resumed = load_file(out / "adapter" / "adapter_model.safetensors")
    assert kept_whole.keys() == kept_resumed.keys()
    assert all(torch.equal(kept_whole[k], kept_resumed[k]) for k in kept_whole)
    assert not run.exists()


def test_resume_refuses_sample_files_replaced_under_the_same_manifest(samples_dir: Path, tiny_llm: Path,
                                                                      tmp_path: Path) -> None:
    """Issue 15: the manifest's hash alone let a rewritten train.jsonl resume on the mix."""
    import shutil

    from ulmrec_align.tuning.config import TrainSettings
    from ulmrec_align.tuning.request import TrainRequest
    from ulmrec_align.tuning.run import prepare_run
    from ulmrec_eval.runtime.errors import InputError

    samples = tmp_path / "A"
    shutil.copytree(samples_dir, samples)
    first = TrainRequest(samples=samples, model=str(tiny_llm), out=tmp_path / "T", progress=False,
                         train=TrainSettings(max_steps=4, seed=0))
    prepare_run(first)
    lines = (samples / "train.jsonl").read_text().splitlines()
    (samples / "train.jsonl").write_text("\n".join(lines[:5]) + "\n")      # same manifest.json, other samples
    with pytest.raises(InputError, match="sample files differ"):
        prepare_run(first.model_copy(update={"resume": True}))
