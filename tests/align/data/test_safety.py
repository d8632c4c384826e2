"""Data stages as a hostile user drives them: rewrites, a dataset's own files, odd names, odd numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import one_line_error, run_console

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.data.split import canonical_split_text, split_sha256

ULMREC = Path(sys.executable).with_name("ulmrec")


def _ulmrec(*args: object) -> subprocess.CompletedProcess[str]:
    return run_console("ulmrec", *map(str, args), timeout=120)


def _one_line_error(*args: object) -> str:
    return one_line_error(_ulmrec(*args))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("safety") / "raw"
    assert _ulmrec("data", "synthetic", "--out", folder, "--users", "40", "--items", "30").returncode == 0
    return folder


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ([("u", ["i1 i2"], "v", "t")], [("u", ["i1", "i2"], "v", "t")]),
        ([("u", ["i1\ti2"], "v", "t")], [("u", ["i1", "i2"], "v", "t")]),
        ([("u\tx", ["i1"], "v", "t")], [("u", ["x\ti1"], "v", "t")]),
        ([("u", [], "v t", "w")], [("u", ["v"], "t", "w")]),
    ],
)
def test_split_hash_is_unambiguous(one: list, other: list) -> None:
    assert split_sha256(one) != split_sha256(other)


def test_split_text_is_one_json_array_per_user_sorted() -> None:
    text = canonical_split_text([("u2", ("b",), "c", "d"), ("u1", ["a", "é"], "c", "d")])
    assert [json.loads(line) for line in text.splitlines()] == [["u1", ["a", "é"], "c", "d"],
                                                                  ["u2", ["b"], "c", "d"]]


def test_prepare_into_an_existing_folder_needs_force(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    assert _ulmrec("data", "prepare", "--source", "amazon", "--path", raw, "--out", out).returncode == 0
    (out / "stray.txt").write_text("x", encoding="utf-8")
    line = _one_line_error("data", "prepare", "--source", "amazon", "--path", raw, "--out", out,
                           "--k-core", "3")
    assert "exists; pass --force" in line
    assert json.loads((out / "manifest.json").read_text())["config"]["k_core"] == 5
    done = _ulmrec("data", "prepare", "--source", "amazon", "--path", raw, "--out", out, "--k-core", "3",
                   "--force")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "manifest.json").read_text())["config"]["k_core"] == 3
    assert not (out / "stray.txt").exists()  # the folder was replaced whole, not written into
    PreparedDataset.load(out)


def test_prepare_never_writes_over_its_input(raw: Path) -> None:
    before = sorted(p.name for p in raw.iterdir())
    line = _one_line_error("data", "prepare", "--source", "amazon", "--path", raw, "--out", raw, "--force")
    assert "is the input --path" in line
    assert sorted(p.name for p in raw.iterdir()) == before


def test_users_refuses_the_datasets_own_files_and_existing_files(raw: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert _ulmrec("data", "prepare", "--source", "amazon", "--path", raw, "--out", data).returncode == 0
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    for name in ("users.jsonl", "manifest.json", "sequences.jsonl"):
        line = _one_line_error("data", "users", data, "--out", data / name, "--force")
        assert "is a file of the prepared dataset" in line
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    PreparedDataset.load(data)
    out = tmp_path / "USERS.jsonl"
    assert _ulmrec("data", "users", data, "--out", out).returncode == 0
    assert "exists; pass --force" in _one_line_error("data", "users", data, "--out", out)
    assert _ulmrec("data", "users", data, "--out", out, "--force").returncode == 0


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--min-rating", "nan", "--min-rating: Input should be a finite number"),
        ("--min-rating", "inf", "--min-rating: Input should be a finite number"),
        ("--text-source", "bogus", "--text-source: Input should be"),
    ],
)
def test_bad_prepare_options_are_one_line(raw: Path, tmp_path: Path, option: str, value: str,
                                          expected: str) -> None:
    line = _one_line_error("data", "prepare", "--source", "amazon", "--path", raw, "--out", tmp_path / "o",
                           option, value)
    assert expected in line
    assert "https://" not in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("category", ["x/../../../../esc", "../esc", "a/b", ".hidden", "", "x" * 65])
def test_synthetic_category_never_escapes_out(tmp_path: Path, category: str) -> None:
    out = tmp_path / "deep" / "er" / "out"
    line = _one_line_error("data", "synthetic", "--out", out, "--category", category)
    assert "--category" in line
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == []


_PREPARE_LOOP = """
import sys
from pathlib import Path
from ulmrec_align.data.config import PrepareConfig
from ulmrec_align.data.pipeline import prepare_dataset
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
n = 0
print("ready", flush=True)
while True:
    n += 1
    config = PrepareConfig(k_core=2 + n % 2, max_texts_per_user=1 + n % 3)  # another folder every time
    prepare_dataset(source="amazon", path=raw, out=out, config=config, force=True)
"""


def test_kill_9_during_prepare_leaves_a_whole_dataset(raw: Path, tmp_path: Path) -> None:
    """A real writer re-prepares in a loop and is killed with SIGKILL at varied moments; the folder always
    loads with its split hash verified against its files (a mix of two writes would fail that check)."""
    import signal
    import time

    out = tmp_path / "prepared"
    assert _ulmrec("data", "prepare", "--source", "amazon", "--path", raw, "--out", out).returncode == 0
    for attempt in range(6):
        child = subprocess.Popen([sys.executable, "-c", _PREPARE_LOOP, str(raw), str(out)],
                                 stdout=subprocess.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(0.3 + 0.17 * attempt)
        child.send_signal(signal.SIGKILL)
        child.wait()
        dataset = PreparedDataset.load(out)  # verify=True: ids and split hash match the manifest
        assert sorted(p.name for p in out.iterdir()) == ["items.jsonl", "manifest.json", "sequences.jsonl",
                                                         "users.jsonl"]
        assert dataset.manifest.config["k_core"] in (2, 3, 5)
