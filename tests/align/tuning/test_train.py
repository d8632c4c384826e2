"""`ulmrec align train` end to end on a tiny random Llama: the artifact, the loss mask, added index tokens,
validation/early stopping/time budget, refusals, events and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ulmrec_align.prompts.encoding import IGNORE_INDEX
from ulmrec_align.tuning.config import LoraSettings, TrainSettings, read_train_manifest
from ulmrec_align.tuning.request import TrainRequest, partial_dir
from ulmrec_align.tuning.run import run_training

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")


def request(samples: Path, model: Path, out: Path, *, lora: dict[str, Any] | None = None,
            **train: Any) -> TrainRequest:
    settings = {"max_steps": 6, "save_steps": 2, "batch_size": 4, "lr": 1e-3, **train}
    return TrainRequest(samples=samples, model=str(model), out=out, progress=False,
                        lora=LoraSettings(**(lora or {})), train=TrainSettings(**settings))


def test_artifact_is_complete_and_reloads_to_the_validated_scores(samples_dir: Path, tiny_llm: Path,
                                                                   tmp_path: Path) -> None:
    from ulmrec_align.models import load_tokenizer
    from ulmrec_align.prompts.letters import letter_index
    from ulmrec_align.ranking.loading import load_tuned
    from ulmrec_align.ranking.scorer import ndcg_at, score_samples
    from ulmrec_align.tasks.schema import read_samples
    from ulmrec_align.tuning.data import encode_samples

    out = tmp_path / "T"
    manifest = run_training(request(samples_dir, tiny_llm, out))
    assert not partial_dir(out).exists()
    assert {p.name for p in out.iterdir()} == {"adapter", "tokenizer", "train_manifest.json"}
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert read_train_manifest(out) == manifest
    assert manifest.status == "complete"
    assert manifest.steps == 6
    assert [h.step for h in manifest.history] == [2, 4, 6]
    scores = [h.ndcg_at_10 for h in manifest.history]
    assert manifest.best_ndcg_at_10 == max(scores)
    assert manifest.best_step == manifest.history[scores.index(max(scores))].step
    # 24 samples, batch 4, 6 steps = exactly one epoch: every sample and token seen once.
    train = read_samples(samples_dir, "train")
    encoded, _ = encode_samples(load_tokenizer(tiny_llm), train, index_tokens="plain", max_length=2048)
    lengths = encoded.lengths
    assert manifest.samples_seen == len(train) == 24
    assert manifest.tokens_seen == sum(lengths)
    assert manifest.lora == LoraSettings(r=8, alpha=32, dropout=0.05, targets=["q_proj", "v_proj"])
    assert manifest.quantization == "none"  # auto on CPU
    # The kept adapter, reloaded through the ranker's entry point, reproduces its validation figure.
    ranker = load_tuned(out)
    valid = read_samples(samples_dir, "valid")
    got = score_samples(ranker.model, ranker.tokenizer, valid, index_tokens="plain")
    best = next(h for h in manifest.history if h.step == manifest.best_step)
    assert ndcg_at(got, [letter_index(s.target_letter or "") for s in valid], 10) == pytest.approx(
        best.ndcg_at_10_raw, abs=1e-6)
    assert manifest.letter_prior is not None
    assert len(manifest.letter_prior) == 5
    assert ranker.letter_prior == manifest.letter_prior
    # the learning rate was logged with the loss at every logged step, and left warm-up: the value logged at
    # step s is the one step s trained with, after s - 1 scheduler steps (p = (s - 1) / 6): the peak 1e-3 x
    # linear warm-up over the first 5 % of p x cosine decay, computed here by hand
    def expected_lr(step: int) -> float:
        p = (step - 1) / 6
        return 1e-3 * min(1.0, p / 0.05) * 0.5 * (1 + math.cos(math.pi * p))

    steps = [c.step for c in manifest.curve]
    assert steps
    assert steps == sorted(set(steps))
    assert steps[-1] == 6
    for point in manifest.curve:
        assert point.lr == pytest.approx(expected_lr(point.step), rel=1e-6, abs=1e-12)
    top = max(manifest.curve, key=lambda c: c.lr)
    assert (top.step - 1) / 6 >= 0.05                                    # past warm-up ...
    assert top.lr >= 0.5e-3                                              # ... at half the peak or more
    assert manifest.curve[-1].lr < top.lr                                # and decaying after it
    assert ranker.prompt.n_candidates == 5


def test_loss_is_on_response_tokens_only(samples_dir: Path, tiny_llm: Path) -> None:
    """Left-padded batches, logits only on the last positions: the same loss as the full-logit
    cross-entropy of the response tokens; ``letters`` is the cross-entropy over the candidate letters."""
    from ulmrec_align.models import load_causal_lm, load_tokenizer
    from ulmrec_align.prompts.encoding import encode_response, letter_token_ids
    from ulmrec_align.tasks.schema import read_samples
    from ulmrec_align.tuning.data import PadCollator, encode_samples
    from ulmrec_align.tuning.loss import alignment_loss

    tokenizer = load_tokenizer(tiny_llm)
    samples = read_samples(samples_dir, "train")[:3]
    data, report = encode_samples(tokenizer, samples, index_tokens="plain", max_length=2048)
    assert report.cut == 0
    for sample, row in zip(samples, data.rows, strict=True):
        response = encode_response(tokenizer, sample.response)
        n_prompt = len(row["input_ids"]) - len(response)
        assert row["labels"] == [IGNORE_INDEX] * n_prompt + response
        assert row["input_ids"][n_prompt:] == response
    batch = PadCollator(pad_id=tokenizer.pad_token_id)(data.rows)
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths == data.lengths
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    assert (batch["attention_mask"][:, -1] == 1).all()  # left-padded: every row ends at the last position
    model = load_causal_lm(tiny_llm)
    letters = letter_token_ids(tokenizer, 5)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     position_ids=batch["position_ids"]).logits
        logits = full[:, :-1]
        targets = batch["labels"][:, 1:]
        keep = targets != IGNORE_INDEX
        manual = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
        loss, _, items = alignment_loss(model, dict(batch), kind="tokens", letter_ids=letters)
        assert loss.item() == pytest.approx(manual.item(), rel=1e-4)
        assert items.sum().item() == keep.sum().item()
        letter_loss, _, letter_items = alignment_loss(model, dict(batch), kind="letters", letter_ids=letters)
    ranking = [i for i, s in enumerate(samples) if s.candidates]
    assert ranking, "the fixture's first samples include next_item"
    want = []
    for i in range(len(samples)):
        first = int(keep[i].float().argmax())
        if i in ranking:
            z = logits[i, first, letters[: len(samples[i].candidates or [])]]
            gold = letters.index(int(targets[i, first]))
            want.append(-torch.log_softmax(z, 0)[gold])
        else:
            want += list(torch.nn.functional.cross_entropy(logits[i][keep[i]], targets[i][keep[i]],
                                                            reduction="none"))
    assert letter_loss.item() == pytest.approx(torch.stack(want).mean().item(), rel=1e-4)
    assert letter_items.sum().item() == len(want)


def test_added_index_tokens_train_only_their_rows(added_samples_dir: Path, tiny_llama_untied: Path,
                                                  tmp_path: Path) -> None:
    from ulmrec_align.models import load_causal_lm
    from ulmrec_align.models.tuned import load_tuned_model

    out = tmp_path / "T"
    manifest = run_training(request(added_samples_dir, tiny_llama_untied, out, max_steps=3, save_steps=3))
    assert manifest.index_tokens == "added"
    ids = manifest.added_token_ids
    assert len(ids) == 4 + 3
    assert ids == list(range(384, 391))
    tensors = load_file(out / "adapter" / "adapter_model.safetensors")
    deltas = {k: v for k, v in tensors.items() if "trainable_tokens" in k}
    owners = sorted("embed_tokens" if "embed_tokens" in k else "lm_head" for k in deltas)
    assert owners == ["embed_tokens", "lm_head"]
    assert all(v.shape == (len(ids), 32) for v in deltas.values())
    model, tokenizer, _ = load_tuned_model(out)
    assert tokenizer.convert_tokens_to_ids(["<a_0>", "<b_2>"]) == [ids[0], ids[-1]]
    base = load_causal_lm(tiny_llama_untied)
    old = torch.tensor([[5, 17, 200]])
    new = torch.tensor([ids])
    embed = model.get_input_embeddings()
    with torch.no_grad():
        assert torch.equal(embed(old), base.get_input_embeddings()(old))  # old rows untouched
        delta = next(v for k, v in deltas.items() if "embed" in k)
        assert torch.equal(embed(new)[0], delta)  # new rows are the trained ones


def test_early_stopping_keeps_the_best_adapter(samples_dir: Path, tiny_llm: Path, tmp_path: Path) -> None:
    seen: list[int] = []

    def falling(model: Any) -> float:  # a validator whose figure only gets worse after the first check
        seen.append(1)
        return 1.0 / len(seen)

    out = tmp_path / "T"
    manifest = run_training(request(samples_dir, tiny_llm, out, max_steps=20, eval_steps=1, patience=2),
                            validator=falling)
    assert manifest.steps == 3
    assert manifest.best_step == 1
    assert manifest.stop_reason.startswith("early stopping")
    assert [h.step for h in manifest.history] == [1, 2, 3]


def test_time_budget_stops_training(samples_dir: Path, tiny_llm: Path, tmp_path: Path) -> None:
    manifest = run_training(request(samples_dir, tiny_llm, tmp_path / "T", max_steps=50, max_minutes=1e-5))
    assert manifest.steps == 1
    assert manifest.stop_reason.startswith("time budget")
    assert [h.step for h in manifest.history] == [1]  # validated once when stopping


def test_refusals_are_one_clear_line(samples_dir: Path, tiny_llm: Path, tmp_path: Path) -> None:
    from ulmrec_eval.runtime.artifacts import ArtifactExistsError
    from ulmrec_eval.runtime.errors import InputError

    out = tmp_path / "T"
    with pytest.raises(InputError, match="nothing to resume"):
        run_training(request(samples_dir, tiny_llm, out).model_copy(update={"resume": True}))
    partial_dir(out).mkdir(parents=True)
    (partial_dir(out) / "junk").write_text("x")
    with pytest.raises(InputError, match="--resume"):
        run_training(request(samples_dir, tiny_llm, out))
    run_training(request(samples_dir, tiny_llm, out, max_steps=2).model_copy(update={"force": True}))
    with pytest.raises(ArtifactExistsError, match="--force"):
        run_training(request(samples_dir, tiny_llm, out, max_steps=2))


def test_resume_refuses_changed_settings(samples_dir: Path, tiny_llm: Path, tmp_path: Path) -> None:
    from ulmrec_align.tuning.run import prepare_run
    from ulmrec_eval.runtime.errors import InputError

    out = tmp_path / "T"
    prepare_run(request(samples_dir, tiny_llm, out))
    changed = request(samples_dir, tiny_llm, out, lr=5e-4).model_copy(update={"resume": True})
    with pytest.raises(InputError, match="cannot resume: --lr differ"):
        prepare_run(changed)
    longer = request(samples_dir, tiny_llm, out, max_steps=12).model_copy(update={"resume": True})
    assert prepare_run(longer).train.max_steps == 12  # more steps is a legitimate continuation


def test_events_report_progress_and_validation(samples_dir: Path, tiny_llm: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("ULMREC_EVENTS", str(events))
    monkeypatch.setenv("ULMREC_STAGE", "train")
    run_training(request(samples_dir, tiny_llm, tmp_path / "T", max_steps=4))
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"train"}
    validations = [r["step"] for r in rows if "valid/ndcg@10" in (r.get("metric") or {})]
    assert validations == [2, 4]
    assert all("train/lr" in r["metric"] for r in rows if "loss" in r)
    assert max(r["step"] for r in rows) == 4
    assert all(r.get("total") in (None, 4) for r in rows)
    assert any("loss" in r for r in rows)


def test_cli_maps_options_to_the_manifest(samples_dir: Path, tiny_llm: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from ulmrec_align.tuning.cli import train_command

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)  # two commands: `train` stays a sub-command
    out = tmp_path / "T"
    result = CliRunner().invoke(app, [
        "train", "--samples", str(samples_dir), "--model", str(tiny_llm), "--out", str(out),
        "--max-steps", "2", "--save-steps", "1", "--eval-steps", "2", "--lora-r", "4", "--lora-alpha", "8",
        "--lora-dropout", "0", "--lora-targets", "q_proj,k_proj", "--quantization", "none", "--seed", "3",
        "--batch-size", "2", "--grad-accum", "2", "--valid-users", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    assert "best validation NDCG@10" in result.output
    manifest = read_train_manifest(out)
    assert manifest.lora == LoraSettings(r=4, alpha=8, dropout=0, targets=["q_proj", "k_proj"])
    assert (manifest.train.seed, manifest.train.batch_size, manifest.train.grad_accum) == (3, 2, 2)
    assert manifest.valid_samples == 3
    assert manifest.samples_seen == 2 * 2 * 2
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["k_proj", "q_proj"]
    assert config["r"] == 4
    assert np.isfinite(manifest.best_ndcg_at_10 or np.nan)


def test_lora_top_layers_adapts_only_the_top_layers(samples_dir: Path, tiny_llm: Path,
                                                    tmp_path: Path) -> None:
    """``--lora-top-layers 1``: adapters on the last decoder layer only (their weights are the only LoRA
    tensors saved), the manifest records it, and a count above the model's layers is one clear refusal."""
    import typer
    from safetensors import safe_open
    from typer.testing import CliRunner

    from ulmrec_align.tuning.cli import train_command

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)
    layers = json.loads((tiny_llm / "config.json").read_text())["num_hidden_layers"]
    assert layers >= 2
    common = ["train", "--samples", str(samples_dir), "--model", str(tiny_llm), "--max-steps", "1",
              "--eval-steps", "1", "--quantization", "none", "--valid-users", "2", "--no-progress"]
    out = tmp_path / "T"
    result = CliRunner().invoke(app, [*common, "--out", str(out), "--lora-top-layers", "1"])
    assert result.exit_code == 0, result.output
    assert read_train_manifest(out).lora.top_layers == 1
    with safe_open(str(out / "adapter" / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    adapted = {int(k.split(".layers.")[1].split(".")[0]) for k in names if "lora_" in k}
    assert adapted == {layers - 1}

    refused = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "T2"), "--lora-top-layers",
                                       str(layers + 1)])
    assert refused.exit_code != 0
    assert f"--lora-top-layers {layers + 1}" in str(refused.exception or refused.output)
    assert not (tmp_path / "T2").exists()


# --------------------------------------------------------------- issue 15: inputs first, nothing left behind
@pytest.mark.parametrize(("damage", "message"), [
    ("malformed", r"train.jsonl:3: "),
    ("empty", r"train.jsonl: no training samples"),
    ("max_length", r"--max-length 16 leaves no room for the prompt: the longest response is \d+ tokens"),
])
def test_bad_inputs_are_refused_before_a_model_loads_and_leave_nothing(
        samples_dir: Path, tiny_llm: Path, tmp_path: Path, damage: str, message: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from ulmrec_align.models import loading
    from ulmrec_eval.runtime.errors import InputError

    samples = tmp_path / "A"
    shutil.copytree(samples_dir, samples)
    lines = (samples / "train.jsonl").read_text().splitlines()
    if damage == "malformed":
        lines[2] = lines[2][:40]
    elif damage == "empty":
        lines = []
    (samples / "train.jsonl").write_text("".join(f"{line}\n" for line in lines))

    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(loading, "load_causal_lm", no_model)
    out = tmp_path / "T"
    settings = {"max_length": 16} if damage == "max_length" else {}
    with pytest.raises(InputError, match=message):
        run_training(request(samples, tiny_llm, out, **settings))
    assert not out.exists()
    assert not partial_dir(out).exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_partial(
        samples_dir: Path, tiny_llm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ulmrec_align.models import loading

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(loading, "load_causal_lm", broken)
    out = tmp_path / "T"
    with pytest.raises(RuntimeError, match="out of memory"):
        run_training(request(samples_dir, tiny_llm, out))
    assert not partial_dir(out).exists()
    assert not out.exists()


def test_sigint_saves_a_checkpoint_at_the_step_it_stops_and_resume_finishes_the_same(
        samples_dir: Path, tiny_llm: Path, tmp_path: Path) -> None:
    import os
    import signal

    from transformers import TrainerCallback

    from ulmrec_align.tuning.callbacks import TrainingInterrupted

    class Final(TrainerCallback):
        weights: ClassVar[dict[str, torch.Tensor]] = {}

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            Final.weights = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}

    class InterruptAtStep3(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)   # as Ctrl-C, or the pipeline's stop

    settings = {"max_steps": 6, "save_steps": 100, "eval_steps": 100}
    run_training(request(samples_dir, tiny_llm, tmp_path / "whole", **settings), callbacks=[Final()])
    reference = dict(Final.weights)

    out = tmp_path / "T"
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as stopped:
        run_training(request(samples_dir, tiny_llm, out, **settings), callbacks=[InterruptAtStep3()])
    assert signal.getsignal(signal.SIGINT) is before
    assert stopped.value.step == 4                    # the step running when the signal came finished
    assert sorted(p.name for p in partial_dir(out).iterdir() if p.name.startswith("checkpoint-")) == \
        ["checkpoint-4"]                              # saved on the signal (save_steps is 100)
    again = request(samples_dir, tiny_llm, out, **settings).model_copy(update={"resume": True})
    resumed = run_training(again, callbacks=[Final()])
    assert resumed.steps == 6
    assert resumed.stop_reason == "max steps"          # not the first attempt's "interrupted"
    for name, value in reference.items():
        assert torch.equal(Final.weights[name], value), name


def test_ctrl_c_of_the_command_says_which_checkpoint_it_saved(samples_dir: Path, tiny_llm: Path,
                                                              tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    events, out = tmp_path / "events.jsonl", tmp_path / "T"
    env = {**os.environ, "ULMREC_EVENTS": str(events), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ulmrec_app.main", "align", "train", "--samples",
                             str(samples_dir), "--model", str(tiny_llm), "--out", str(out), "--max-steps",
                             "100000", "--save-steps", "100000", "--eval-steps", "100000", "--no-progress"],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (events.is_file() and any(
            json.loads(line).get("step", 0) >= 2 for line in events.read_text().splitlines())):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]            # after the model loader's progress bar
    step = int(line.split("Interrupted at step ")[1].split(":")[0])
    expected = f"saved checkpoint-{step} in {partial_dir(out)}; continue with the same command and --resume"
    assert expected in line
    assert (partial_dir(out) / f"checkpoint-{step}").is_dir()


def test_a_diverged_loss_stops_training_with_one_clear_line(samples_dir: Path, tiny_llm: Path,
                                                            tmp_path: Path) -> None:
    """A NaN loss (seen on a GPU in bf16 at lr 1e-3) ends training at the first logged step with a message
    naming the step and the learning rate, instead of training on and failing to write the manifest."""
    import shutil

    from safetensors.torch import save_file

    from ulmrec_align.tuning.callbacks import TrainingDivergedError

    poisoned = tmp_path / "poisoned"
    shutil.copytree(tiny_llm, poisoned)
    weights = load_file(str(poisoned / "model.safetensors"))
    norm = next(k for k in weights if k.endswith("model.norm.weight"))
    weights[norm] = torch.full_like(weights[norm], float("nan"))
    save_file(weights, str(poisoned / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(TrainingDivergedError, match=r"diverged at step \d+: loss is nan.*lower --lr"):
        run_training(request(samples_dir, poisoned, tmp_path / "T", max_steps=4))
    assert not (tmp_path / "T").exists()
