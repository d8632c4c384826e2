"""atomic_dir / folder_lock / clean_orphans: an artifact folder appears whole or not at all; one writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ulmrec_eval.runtime import artifacts
from ulmrec_eval.runtime.artifacts import (
    ArtifactExistsError,
    ArtifactLockedError,
    atomic_dir,
    atomic_update,
    clean_orphans,
    folder_lock,
)
from ulmrec_eval.runtime.errors import is_user_error

FILES = ("a.bin", "b.bin", "c.json")


def _write(folder: Path, tag: str) -> None:
    for name in FILES:
        (folder / name).write_text(tag, encoding="utf-8")


def _tags(folder: Path) -> set[str]:
    return {(folder / name).read_text(encoding="utf-8") for name in FILES if (folder / name).exists()}


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout)


def test_new_folder_appears_whole(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    with atomic_dir(out, force=False) as tmp:
        assert tmp.parent == out.parent
        assert tmp.name.startswith(".idx.tmp-")
        _write(tmp, "v1")
        assert not out.exists()
    assert _tags(out) == {"v1"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx.tmp")] == []


def test_existing_folder_needs_force_and_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    with atomic_dir(out, force=False) as tmp:
        _write(tmp, "v1")
        (tmp / "stray.txt").write_text("old only", encoding="utf-8")
    with pytest.raises(ArtifactExistsError, match=r"idx exists; pass --force"), atomic_dir(out, force=False):
        pass
    assert is_user_error(ArtifactExistsError("x"))
    with atomic_dir(out, force=True) as tmp:
        _write(tmp, "v2")
    assert _tags(out) == {"v2"}
    assert not (out / "stray.txt").exists()  # no stray file of the old artifact survives
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["idx"]


def test_empty_existing_folder_needs_no_force(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    out.mkdir()
    with atomic_dir(out, force=False) as tmp:
        _write(tmp, "v1")
    assert _tags(out) == {"v1"}


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    out.write_text("x", encoding="utf-8")
    with pytest.raises(ArtifactExistsError, match="not a folder"), atomic_dir(out, force=True):
        pass


def test_error_inside_keeps_the_old_folder_and_removes_the_temporary(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    with atomic_dir(out, force=False) as tmp:
        _write(tmp, "v1")
    def fail() -> None:
        with atomic_dir(out, force=True) as tmp:
            _write(tmp, "v2")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert _tags(out) == {"v1"}
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_fallback_without_exchange_replaces_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "idx"
    with atomic_dir(out, force=False) as tmp:
        _write(tmp, "v1")
    monkeypatch.setattr(artifacts, "exchange", lambda a, b: False)
    with atomic_dir(out, force=True) as tmp:
        _write(tmp, "v2")
    assert _tags(out) == {"v2"}
    assert [p.name for p in tmp_path.iterdir() if ".old-" in p.name] == []


def test_atomic_update_rewrites_some_files_together(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with atomic_dir(out, force=False) as tmp:
        _write(tmp, "v1")
        (tmp / "checkpoint").write_text("ck", encoding="utf-8")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x").write_text("x", encoding="utf-8")
    with atomic_update(out) as tmp:
        assert (tmp / "checkpoint").read_text(encoding="utf-8") == "ck"
        with (tmp / "a.bin").open("w", encoding="utf-8") as handle:  # in place: must not reach the original
            handle.write("v2")
            assert (out / "a.bin").read_text(encoding="utf-8") == "v1"
        (tmp / "b.bin").write_text("v2", encoding="utf-8")
        (tmp / "c.json").write_text("v2", encoding="utf-8")
    assert _tags(out) == {"v2"}
    assert (out / "checkpoint").read_text(encoding="utf-8") == "ck"
    assert (out / "sub" / "x").read_text(encoding="utf-8") == "x"

    def fail() -> None:
        with atomic_update(out) as tmp:
            (tmp / "a.bin").write_text("v3", encoding="utf-8")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        fail()
    assert _tags(out) == {"v2"}


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("A", encoding="utf-8")
    (b / "x").write_text("B", encoding="utf-8")
    if not artifacts.exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not available here; the two-rename fallback is used")
    assert (a / "x").read_text(encoding="utf-8") == "B"
    assert (b / "x").read_text(encoding="utf-8") == "A"


def test_clean_orphans_removes_dead_writers_only(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".idx.tmp-{dead}-0badf00d"
    stale.mkdir()
    (stale / "half.bin").write_text("x", encoding="utf-8")
    live = tmp_path / f".idx.tmp-{os.getpid()}-0badf00d"
    live.mkdir()
    other = tmp_path / ".hidden"
    other.mkdir()
    removed = clean_orphans(tmp_path)
    assert removed == [stale]
    assert not stale.exists()
    assert live.exists()
    assert other.exists()


def test_clean_orphans_restores_the_old_folder_after_a_kill_between_renames(tmp_path: Path) -> None:
    dead = _dead_pid()
    aside = tmp_path / f".idx.old-{dead}-12ab"
    aside.mkdir()
    _write(aside, "v1")
    clean_orphans(tmp_path)
    assert _tags(tmp_path / "idx") == {"v1"}
    # with the new folder already in place, the aside copy is just deleted
    aside.mkdir()
    _write(aside, "v0")
    clean_orphans(tmp_path)
    assert not aside.exists()
    assert _tags(tmp_path / "idx") == {"v1"}


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from ulmrec_eval.runtime.artifacts import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_second_writer_is_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(ArtifactLockedError) as info, atomic_dir(out, force=True):
            pass
        message = str(info.value)
        assert "\n" not in message
        assert f"is being written by another process (pid {holder.pid})" in message
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    with atomic_dir(out, force=True) as tmp:  # the holder died: the lock went with it
        _write(tmp, "v1")
    assert _tags(out) == {"v1"}


def test_lock_is_reentrant_within_one_process(tmp_path: Path) -> None:
    out = tmp_path / "idx"
    with folder_lock(out), atomic_dir(out, force=False) as tmp:
        _write(tmp, "v1")
    assert _tags(out) == {"v1"}


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ulmrec_eval.runtime.artifacts import atomic_dir
    out = Path(sys.argv[1])
    files = ("a.bin", "b.bin", "c.json")
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        with atomic_dir(out, force=True) as tmp:
            for name in files:
                (tmp / name).write_text(f"v{n}", encoding="utf-8")
                time.sleep(0.001)
    """
)


def test_kill_9_at_any_moment_leaves_old_or_new_never_a_mix(tmp_path: Path) -> None:
    """A real writer rewrites the folder in a loop and is killed with SIGKILL at varied moments."""
    out = tmp_path / "idx"
    with atomic_dir(out, force=False) as tmp:
        _write(tmp, "v0")
    script = tmp_path / "child.py"
    script.write_text(_CHILD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.02 + 0.037 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert out.is_dir()
        tags = _tags(out)
        assert len(tags) == 1, tags  # one version ...
        assert len(list(out.iterdir())) == len(FILES)  # ... and whole
        clean_orphans(tmp_path)
        leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
        assert leftovers == []
    # the lock died with the killed writer: the next writer goes through
    with atomic_dir(out, force=True) as tmp:
        _write(tmp, "final")
    assert _tags(out) == {"final"}
