"""`ulmrec data …` commands, in process (CliRunner) and as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ulmrec_align.data.cli import app
from ulmrec_eval.runtime.errors import InputError

ULMREC = Path(sys.executable).with_name("ulmrec")
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    result = invoke("synthetic", "--out", root / "raw", "--users", "40", "--items", "30", "--seed", "5")
    assert result.exit_code == 0, result.output
    assert "reviews_Synthetic_5.json.gz" in result.output
    result = invoke("prepare", "--source", "amazon", "--path", root / "raw", "--out", root / "prep")
    assert result.exit_code == 0, result.output
    return root, result.output


def test_prepare_prints_counts_and_hash(prepared):
    root, output = prepared
    manifest = json.loads((root / "prep" / "manifest.json").read_text())
    assert "amazon-synthetic (amazon2014): 40 users, 30 items" in output
    assert f"split_sha256: {manifest['split_sha256']}" in output
    assert manifest["config"]["k_core"] == 5


def test_prepare_options_reach_the_config(prepared):
    root, _ = prepared
    result = invoke(
        "prepare",
        "--source",
        "amazon",
        "--path",
        root / "raw",
        "--out",
        root / "prep-sum",
        "--k-core",
        "3",
        "--text-source",
        "summaries",
        "--max-texts",
        "2",
        "--name",
        "mini",
        "--json",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["name"] == "mini"
    assert manifest["text_source"] == "summaries"
    assert manifest["config"]["k_core"] == 3
    assert manifest["config"]["max_texts_per_user"] == 2
    users = [json.loads(line) for line in (root / "prep-sum" / "users.jsonl").read_text().splitlines()]
    assert all(1 <= len(u["texts"]) <= 2 for u in users)


def test_inspect_table_and_json(prepared):
    root, _ = prepared
    table = invoke("inspect", root / "prep")
    assert table.exit_code == 0, table.output
    assert "sparsity" in table.output
    assert "sequence length" in table.output
    stats = json.loads(invoke("inspect", root / "prep", "--json").output)
    assert (stats["users"], stats["items"]) == (40, 30)
    lengths = [len(json.loads(line)["items"]) for line in (root / "prep" / "sequences.jsonl").open()]
    assert stats["interactions"] == sum(lengths)
    assert stats["sequence_length"]["min"] == min(lengths)
    assert stats["sequence_length"]["max"] == max(lengths)
    assert stats["sparsity"] == pytest.approx(1 - sum(lengths) / (40 * 30))


def test_users_writes_one_line_per_user(prepared):
    root, _ = prepared
    result = invoke("users", root / "prep", "--out", root / "USERS.jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (root / "USERS.jsonl").read_text().splitlines()]
    raw_ids = [json.loads(line)["raw_id"] for line in (root / "prep" / "users.jsonl").open()]
    assert [line["user_id"] for line in lines] == raw_ids
    assert all(isinstance(line["user_id"], str) and line["texts"] for line in lines)


def test_known_errors_are_raised_for_the_runner(tmp_path):
    result = invoke("prepare", "--source", "csv", "--path", tmp_path, "--out", tmp_path / "o")
    assert isinstance(result.exception, InputError)
    result = invoke("inspect", tmp_path)
    assert isinstance(result.exception, InputError)
    assert "no manifest.json" in str(result.exception)


def _ulmrec(*args: object, seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    cmd = [str(ULMREC), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env)


def test_real_process_success_and_one_line_error(tmp_path):
    raw = tmp_path / "raw"
    done = _ulmrec("data", "synthetic", "--out", raw)
    assert done.returncode == 0, done.stderr
    hashes = set()
    for seed in ("1", "977"):  # same split whatever the hash seed
        done = _ulmrec(
            "data", "prepare", "--source", "amazon", "--path", raw, "--out", tmp_path / seed, seed=seed
        )
        assert done.returncode == 0, done.stderr
        assert "300 users, 150 items" in done.stdout
        hashes.add(json.loads((tmp_path / seed / "manifest.json").read_text())["split_sha256"])
    assert len(hashes) == 1

    reviews = raw / "reviews_Synthetic_5.json.gz"
    reviews.write_bytes(b"\x1f\x8b broken")
    failed = _ulmrec("data", "prepare", "--source", "amazon", "--path", raw, "--out", tmp_path / "again")
    assert failed.returncode == 1
    assert failed.stderr.strip().count("\n") == 0
    assert failed.stderr.startswith("ulmrec: error: ")
    assert f"{reviews}: unreadable gzip file" in failed.stderr
    assert not (tmp_path / "again").exists()


def test_cli_module_imports_nothing_heavy():
    code = (
        "import sys, ulmrec_align.data.cli; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
