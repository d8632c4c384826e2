"""Bad input to the experiment layer and the writers around it is one line on stderr and a non-zero exit,
never a traceback (issue 26, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import one_line_error, run_console

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo-cpu.toml"


def _one_line_error(*args: object) -> str:
    return one_line_error(run_console("ulmrec", *map(str, args), timeout=120))


@pytest.mark.parametrize(("seeds", "expected"), [("-1", "seeds are integers >= 0, got -1"),
                                                 ("", "--seeds: no seed given"),
                                                 (",", "--seeds: no seed given"),
                                                 ("0,x", "--seeds expects comma-separated integers")])
def test_ablate_refuses_bad_seeds_before_planning_anything(tmp_path: Path, seeds: str, expected: str) -> None:
    line = _one_line_error("experiment", "ablate", CONFIG, "--runs", tmp_path / "runs", "--seeds", seeds,
                           "--dry-run")
    assert expected in line
    assert not (tmp_path / "runs" / "demo-experiment" / "experiment.json").exists()


def test_a_config_or_key_map_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "x"\ndescription = "caf\xe9"\n')
    assert _one_line_error("run", bad, "--dry-run").endswith("bad.toml:2: not UTF-8 (byte 0xe9); save the "
                                                             "config as UTF-8")
    assert "not UTF-8" in _one_line_error("experiment", "ablate", bad, "--dry-run", "--runs", tmp_path)
    assert "bad.toml: not UTF-8 (byte 0xe9" in _one_line_error("tui", "--keys", bad)


@pytest.mark.parametrize("device", ["bogus", "cuda"])
def test_user_vectors_refuses_a_device_it_cannot_use(tmp_path: Path, device: str) -> None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    for name in ("data", "retriever"):
        (tmp_path / name).mkdir()
    line = _one_line_error("retrieve", "user-vectors", "--data", tmp_path / "data", "--retriever",
                           tmp_path / "retriever", "--out", tmp_path / "vectors", "--device", device)
    assert ("--device 'bogus' is not a device" if device == "bogus" else "no usable CUDA GPU") in line


def test_report_on_a_run_with_no_predictions_or_foreign_users_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "full-s0"
    (run / "rank").mkdir(parents=True)
    (run / "retrieve" / "retriever").mkdir(parents=True)
    (run / "rank" / "predictions.jsonl").write_text("", encoding="utf-8")
    candidates = run / "retrieve" / "retriever" / "candidates.jsonl"
    candidates.write_text('{"user_id": 1, "split": "test", "target": 5, "candidates": [5, 6], '
                          '"scores": [2.0, 1.0]}\n', encoding="utf-8")
    assert "predictions.jsonl: no test predictions" in _one_line_error(
        "experiment", "report", run, "--out", tmp_path / "report")
    (run / "rank" / "predictions.jsonl").write_text(
        '{"user_id": 7, "split": "test", "target": 5, "candidates": [5, 6], "scores": [2.0, 1.0]}\n',
        encoding="utf-8")
    line = _one_line_error("experiment", "report", run, "--out", tmp_path / "report")
    assert "1 predicted users are not among the retriever's test candidates" in line
    assert "(e.g. user 7)" in line


def test_ablate_says_what_is_wrong_with_variants(tmp_path: Path) -> None:
    assert "--variants: no variant given ('')" in _one_line_error(
        "experiment", "ablate", CONFIG, "--runs", tmp_path, "--variants", "", "--dry-run")
    assert "--variants: unknown nope, other; known: full" in _one_line_error(
        "experiment", "ablate", CONFIG, "--runs", tmp_path, "--variants", "full,nope,other", "--dry-run")


@pytest.mark.parametrize(("keys", "expected"), [
    ('"run.launch" = "ctl+l"', "run.launch: 'ctl+l': 'ctl' is not a modifier"),
    ('"run.launch" = "bogus"', "run.launch: 'bogus': 'bogus' is not a key name"),
    ('"run.launch" = "q"', "run.launch and app.quit would both be 'q' on the run screen"),
    ('"runs.open" = "i"', "runs.open and runs.index would both be 'i' on the runs screen"),
])
def test_a_key_map_with_unknown_keys_or_clashes_is_refused(tmp_path: Path, keys: str, expected: str) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(keys + "\n", encoding="utf-8")
    assert expected in _one_line_error("tui", "--keys", path, "--list-keys")


def test_list_keys_shows_the_key_map_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text('"run.launch" = "ctrl+l"\n"runs.open" = "f5,space"\n', encoding="utf-8")
    done = run_console("ulmrec", "tui", "--keys", str(path), "--list-keys", timeout=120)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines() if line.strip()}
    assert lines["run.launch"] == "ctrl+l"
    assert lines["runs.open"] == "f5,space"
    assert lines["app.quit"] == "q"


def test_report_says_when_no_run_is_the_baseline(tmp_path: Path) -> None:
    """Two index runs, neither named full: the report compares nothing, and the command says why."""
    import json

    for name in ("a-s0", "b-s0"):
        run = tmp_path / name
        (run / "rank").mkdir(parents=True)
        (run / "retrieve" / "retriever").mkdir(parents=True)
        (run / "rank" / "predictions.jsonl").write_text(json.dumps(
            {"user_id": 1, "split": "test", "target": 5, "candidates": [5, 6], "scores": [2.0, 1.0],
             "retrieved_n": 2}) + "\n", encoding="utf-8")
        (run / "retrieve" / "retriever" / "candidates.jsonl").write_text(json.dumps(
            {"user_id": 1, "split": "test", "target": 5, "candidates": [5, 6], "scores": [2.0, 1.0]}) + "\n",
            encoding="utf-8")
    done = run_console("ulmrec", "experiment", "report", str(tmp_path / "a-s0"), str(tmp_path / "b-s0"),
                       "--out", str(tmp_path / "report"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no baseline: none of the variants (a, b) is full ULMRec" in done.stderr
