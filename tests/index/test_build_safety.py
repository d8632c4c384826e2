"""`ulmrec-index build` as a hostile user drives it: rewrite, concurrent writer, bad options, corrupt cache,
and codes that do not depend on the cache or the thread count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from support.cli import run_console
from typer.testing import CliRunner

from ulmrec_index.cli import app
from ulmrec_index.encoders import TextEncoder, folder_content_hash, model_identity

sys.path.insert(0, str(Path(__file__).parent))
from index_fixtures import themed_users

SMALL = ["--levels", "2", "--codebook-size", "8", "--joint-epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in themed_users()), encoding="utf-8")
    return path


def _build(users: Path, out: Path, cache: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["build", "--users", str(users), "--out", str(out), *SMALL, "--cache-dir", str(cache), *extra]
    )
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def _one_line_error(args: list[str]) -> str:
    """Run the console script; assert exit 1 with a single stderr line and no traceback; return the line."""
    proc = run_console("ulmrec-index", *args)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    return proc.stderr.strip()


def test_rewrite_needs_force_and_replaces_the_folder_whole(users_file: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "idx", tmp_path / "cache"
    assert _build(users_file, out, cache, "--seed", "1")[0] == 0
    (out / "stray.txt").write_text("left over", encoding="utf-8")
    code, output = _build(users_file, out, cache, "--seed", "2")
    assert code != 0
    assert "exists; pass --force" in output
    assert json.loads((out / "index.json").read_text())["seed"] == 1
    code, output = _build(users_file, out, cache, "--seed", "2", "--force")
    assert code == 0, output
    assert json.loads((out / "index.json").read_text())["seed"] == 2
    assert not (out / "stray.txt").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_save_that_fails_midway_keeps_the_previous_index(
    users_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (here: failing) after the quantizer file is written, the old index must stay whole."""
    from ulmrec_index import persistence
    from ulmrec_index.indexer import UserIndexer

    out, cache = tmp_path / "idx", tmp_path / "cache"
    assert _build(users_file, out, cache, "--seed", "1")[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fitted = UserIndexer.load(out, cache_dir=cache)
    fitted.artifact = fitted.artifact.model_copy(update={"seed": 99}) if fitted.artifact else None
    calls = {"n": 0}
    real_save_file = persistence.save_file

    def failing_save_file(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_save_file(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(persistence, "save_file", failing_save_file)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


_HOLD = textwrap.dedent(
    """
    import sys, time
    from ulmrec_eval.runtime.artifacts import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_a_second_writer_is_refused(users_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        line = _one_line_error(["build", "--users", str(users_file), "--out", str(out), *SMALL, "--no-cache"])
        assert f"is being written by another process (pid {holder.pid})" in line
    finally:
        holder.kill()
        holder.wait()
    assert not out.exists()


def test_output_folder_holding_the_input_is_refused(users_file: Path, tmp_path: Path) -> None:
    line = _one_line_error(["build", "--users", str(users_file), "--out", str(users_file.parent), "--force"])
    assert "holds the input" in line
    assert users_file.is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "n_itr=3"], "n_itr"),
        (["--device", "bogus"], "--device 'bogus' is not a device"),
        (["--encoder", str(Path("/nonexistent/model"))], "no such model folder"),
    ],
)
def test_bad_options_are_one_line(users_file: Path, tmp_path: Path, args: list[str], expected: str) -> None:
    line = _one_line_error(["build", "--users", str(users_file), "--out", str(tmp_path / "x"), *SMALL,
                            "--no-cache", *args])
    assert expected in line
    assert "https://" not in line
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a torch without CUDA")
def test_device_cuda_without_cuda_is_one_line(users_file: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x")
    line = _one_line_error(["build", "--users", str(users_file), "--out", out, "--device", "cuda"])
    assert "no usable CUDA GPU" in line


def test_a_corrupt_cache_shard_is_reported_skipped_and_rewritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts = ["Loves matte red lipstick.", "Buys argan oil for curly hair."]
    first = TextEncoder(cache_dir=tmp_path).encode(texts)
    shards = list(tmp_path.rglob("shard-*.safetensors"))
    assert len(shards) == 1
    shards[0].write_bytes(shards[0].read_bytes()[:50])  # truncated, as by a crash or a full disk
    again = TextEncoder(cache_dir=tmp_path)
    with caplog.at_level("WARNING", logger="ulmrec_index.cache"):
        second = again.encode(texts)
    assert "is corrupt" in caplog.text
    assert again.last_stats.n_encoded == 2
    np.testing.assert_array_equal(first, second)
    third = TextEncoder(cache_dir=tmp_path)
    third.encode(texts)
    assert third.last_stats.n_cached == 2  # rewritten


def test_shard_of_another_width_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ulmrec_index.cache import EmbeddingCache, text_sha256

    cache = EmbeddingCache(tmp_path, "m")
    cache.put([text_sha256("a")], np.ones((1, 3), dtype=np.float32))
    bad = tmp_path / "m" / "shard-zzzz.safetensors"
    save_file({"sha256": torch.zeros(1, 32, dtype=torch.uint8), "embeddings": torch.ones(1, 5)}, str(bad))
    with caplog.at_level("WARNING", logger="ulmrec_index.cache"):
        found, _ = EmbeddingCache(tmp_path, "m").get([text_sha256("a")])
    assert found.tolist() == [True]
    assert "differs from the other shards" in caplog.text
    assert not bad.exists()


def test_identity_is_a_content_hash_computed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a" / "model", tmp_path / "b" / "model"
    for folder, byte in ((a, b"\x01"), (b, b"\x02")):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}", encoding="utf-8")
        (folder / "model.safetensors").write_bytes(byte * 1000)  # same size, other content
    assert model_identity(str(a), normalize=True) != model_identity(str(b), normalize=True)
    memo = tmp_path / "memo"
    value = folder_content_hash(a, memo_dir=memo)
    saved = json.loads((memo / "model-hashes.json").read_text())["folders"]
    assert saved[str(a.resolve())]["sha256"] == value
    import ulmrec_index.encoders as encoders

    monkeypatch.setattr(encoders, "_MEMO", {})  # a new process: the memo file answers, nothing is read
    real_open = Path.open

    def guarded_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.suffix == ".safetensors":
            pytest.fail("weights read again")
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", guarded_open)
    assert folder_content_hash(a, memo_dir=memo) == value


# Texts of many lengths: padding to the longest text of a batch changes other rows by ~1e-7.
_WORDS = ["good", "bad", "great", "love", "hate", "product", "skin", "hair", "smell", "price", "cheap",
          "lotion", "cream", "works", "nice", "the", "a", "of"]


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(_WORDS, size=int(rng.integers(3, 60)))) for _ in range(n)]


def test_vectors_do_not_depend_on_batch_mates_cache_or_threads(tmp_path: Path) -> None:
    texts = _texts(160)
    torch.set_num_threads(2)
    try:
        together = TextEncoder(cache_dir=None).encode(texts)
        warm = TextEncoder(cache_dir=tmp_path)
        warm.encode(texts[::3])  # the cache holds a subset, encoded in other batches
        mixed = TextEncoder(cache_dir=tmp_path).encode(texts)
        alone = np.stack([TextEncoder(cache_dir=None, batch_size=1).encode([t])[0] for t in texts[:20]])
    finally:
        torch.set_num_threads(1)
    np.testing.assert_array_equal(together, mixed)
    np.testing.assert_array_equal(together[:20], alone)
    assert torch.get_num_threads() == 1


_CODES = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, sys.argv[1])
    from index_fixtures import themed_users
    from ulmrec_index.indexer import UserIndexer
    torch.set_num_threads(int(sys.argv[2]))
    idx = UserIndexer(quantizer={"kind": "rqvae", "levels": 2, "codebook_size": 8}, cache_dir=sys.argv[3],
                      joint_epochs=2, seed=5)
    print(json.dumps(idx.fit(themed_users()).codes))
    """
)


def test_codes_do_not_depend_on_the_thread_count(tmp_path: Path) -> None:
    here = str(Path(__file__).parent)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)
    runs = [
        subprocess.run([sys.executable, "-c", _CODES, here, str(threads), str(tmp_path / "cache")],
                       capture_output=True, text=True, check=True, env=env).stdout
        for threads in (1, 2)
    ]
    assert json.loads(runs[0]) == json.loads(runs[1])


def test_a_one_user_index_report_is_standard_json_without_nan(tmp_path: Path) -> None:
    users = tmp_path / "one.jsonl"
    users.write_text('{"user_id": "solo", "texts": ["Loves red lipstick."]}\n', encoding="utf-8")
    out = tmp_path / "idx"
    code, output = _build(users, out, tmp_path / "cache")
    assert code == 0, output
    text = (out / "report.json").read_text(encoding="utf-8")
    assert "NaN" not in text
    report = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert all(c["random"] is None and c["ratio"] is None for c in report["ours"]["coherence"])


_SAVE_LOOP = """
import sys
from ulmrec_index.indexer import UserIndexer
a, b, out = (UserIndexer.load(sys.argv[1]), UserIndexer.load(sys.argv[2]), sys.argv[3])
print("ready", flush=True)
n = 0
while True:
    n += 1
    (a if n % 2 else b).save(out, force=True)
"""


@pytest.mark.slow
def test_kill_9_during_index_save_leaves_one_whole_index(users_file: Path, tmp_path: Path) -> None:
    """A real process rewrites OUT with two different indices in turn and is killed with SIGKILL at varied
    moments: OUT always holds exactly the files of one of them."""
    import signal
    import time

    from ulmrec_index.indexer import UserIndexer

    cache = tmp_path / "cache"
    for seed in ("1", "2"):
        code, output = _build(users_file, tmp_path / f"fit{seed}", cache, "--seed", seed)
        assert code == 0, output
    expected = []
    for seed in ("1", "2"):  # what a save of the loaded index writes (texts.jsonl is not reloaded)
        saved = UserIndexer.load(tmp_path / f"fit{seed}").save(tmp_path / f"ref{seed}")
        expected.append({p.name: p.read_bytes() for p in saved.iterdir()})
    assert expected[0] != expected[1]
    out = tmp_path / "idx"
    for attempt in range(5):
        child = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(tmp_path / "fit1"),
                                  str(tmp_path / "fit2"), str(out)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready", child.communicate()[1].decode()[-2000:]
        time.sleep(0.2 + 0.13 * attempt)
        child.send_signal(signal.SIGKILL)
        child.wait()
        if attempt == 0 and not out.exists():
            continue  # killed before the first save finished: nothing, which is allowed
        assert {p.name: p.read_bytes() for p in out.iterdir()} in expected
        UserIndexer.load(out)
