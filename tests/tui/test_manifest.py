"""ulmrec_app.pipeline.manifest: the stage record (round trip, a dead process reads as failed, bad files,
content hashes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ulmrec_app.pipeline.manifest import StageManifest, process_alive, process_start_time, sha256_path
from ulmrec_eval.runtime.errors import InputError


def test_manifest_round_trip_and_dead_process_is_failed(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(proc.pid)
    proc.wait()
    manifest = StageManifest(stage="train", run="demo", status="running", pid=proc.pid, pid_start=start,
                             figures={"loss": 1.5}, started=time.time())
    manifest.save(tmp_path)
    loaded = StageManifest.load(tmp_path)
    assert loaded == manifest
    assert loaded.effective_status() == "failed"
    alive = loaded.model_copy(update={"pid": os.getpid(), "pid_start": process_start_time(os.getpid())})
    assert alive.effective_status() == "running"
    assert process_alive(os.getpid())
    assert StageManifest.load_or_none(tmp_path / "missing") is None


def test_bad_manifest_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "stage.json").write_text('{"stage": "x", "status": "sleeping"}')
    with pytest.raises(InputError, match=r"stage.json: invalid StageManifest: status"):
        StageManifest.load(tmp_path)


def test_sha256_path_changes_with_content_and_names(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("1")
    (folder / "sub" / "b.txt").write_text("2")
    before = sha256_path(folder)
    assert sha256_path(folder) == before
    (folder / "sub" / "b.txt").write_text("3")
    assert sha256_path(folder) != before
    assert sha256_path(folder / "a.txt") != sha256_path(folder / "sub" / "b.txt")
    with pytest.raises(FileNotFoundError):
        sha256_path(tmp_path / "nope")


def test_a_run_made_before_the_rename_is_read_from_manifest_json_and_rewritten_as_stage_json(
        tmp_path: Path) -> None:
    old = StageManifest(stage="users", run="r", status="done", config_hash="c")
    (tmp_path / "manifest.json").write_text(old.model_dump_json())
    assert StageManifest.load(tmp_path).config_hash == "c"
    StageManifest.load(tmp_path).save(tmp_path)
    assert (tmp_path / "stage.json").is_file()
    assert not (tmp_path / "manifest.json").exists()
    dataset_manifest = tmp_path / "d"
    dataset_manifest.mkdir()
    (dataset_manifest / "manifest.json").write_text('{"kind": "prepared"}')   # not a stage record
    assert StageManifest.load_or_none(dataset_manifest) is None
