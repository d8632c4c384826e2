"""`ulmrec-index build / inspect / lookup` through Typer's CliRunner, plus one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import run_console
from typer.testing import CliRunner

from ulmrec_index.cli import app
from ulmrec_index.codes import format_code

sys.path.insert(0, str(Path(__file__).parent))
from index_fixtures import themed_users

BIN = Path(sys.executable).parent
SMALL = ["--levels", "2", "--codebook-size", "8", "--joint-epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.jsonl"
    rows = [*themed_users(), {"user_id": "quiet", "texts": []}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(users_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("built")
    out = root / "index"
    ref = root / "ref.json"
    ref.write_text(
        json.dumps(
            {
                "levels": ["a", "b"],
                "codebook_size": 8,
                "codes": {r["user_id"]: [i % 8, i // 8] for i, r in enumerate(themed_users())},
            }
        )
    )
    result = CliRunner().invoke(
        app,
        [
            "build",
            "--users",
            str(users_file),
            "--out",
            str(out),
            *SMALL,
            "--cache-dir",
            str(root / "cache"),
            "--reference",
            str(ref),
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "coherence" in result.output
    assert "reference" in result.output
    return out


def test_build_writes_a_complete_index(built: Path) -> None:
    index = json.loads((built / "index.json").read_text())
    assert len(index["codes"]) == 49
    assert index["seed"] == 3
    report = json.loads((built / "report.json").read_text())
    assert report["repair"]["collisions_after"] == 0
    assert report["n_users_without_text"] == 1
    assert report["reference_users_matched"] == 48


def test_inspect_table_and_json(built: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(built)])
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output
    assert "49 users" in result.output
    as_json = CliRunner().invoke(app, ["inspect", str(built), "--json"])
    assert json.loads(as_json.output)["n_users"] == 49


def test_lookup_shows_code_texts_and_neighbours(built: Path) -> None:
    index = json.loads((built / "index.json").read_text())
    result = CliRunner().invoke(app, ["lookup", str(built), "skin-3"])
    assert result.exit_code == 0, result.output
    assert format_code(index["codes"]["skin-3"], index["token_format"]) in result.output
    assert "mineral sunscreen" in result.output
    assert "sharing first 1 code(s)" in result.output
    quiet = CliRunner().invoke(app, ["lookup", str(built), "quiet"])
    assert "user-ID path" in quiet.output
    unknown = CliRunner().invoke(app, ["lookup", str(built), "nobody"])
    assert unknown.exit_code != 0
    assert "unknown user_id 'nobody'" in str(unknown.exception)


def test_bad_set_option(users_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["build", "--users", str(users_file), "--out", str(tmp_path), "--set", "oops"]
    )
    assert result.exit_code != 0
    assert "KEY=VALUE" in result.output


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_console("ulmrec-index", *args)


def test_console_script_builds_and_errors_are_one_line(users_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    result = _run(
        "build",
        "--users",
        str(users_file),
        "--out",
        str(out),
        "--quantizer",
        "rqkmeans",
        *SMALL,
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr
    assert (out / "index.json").is_file()
    assert "wrote" in result.stdout
    looked = _run("lookup", str(out), "hair-2")
    assert looked.returncode == 0
    assert "<a_" in looked.stdout

    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"user_id": "a", "texts": ["x"]}\n{"user_id": "a", "texts": ["y"]}\n', encoding="utf-8")
    bad = _run("build", "--users", str(dup), "--out", str(tmp_path / "x"))
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0
    assert f"{dup}:2:" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_module_does_not_import_torch() -> None:
    code = "import sys, ulmrec_index, ulmrec_index.cli; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_cold_share_fits_without_the_cold_users_and_encodes_them_after(users_file: Path,
                                                                       tmp_path: Path) -> None:
    """--cold-share: exactly the users ulmrec_eval.cold_start names are held out of the fit and get their
    codes afterwards (encode, no ID embedding), distinct from every other code, recorded in index.json."""
    from ulmrec_eval.cold_start import is_cold
    from ulmrec_index.artifact import load_index

    out = tmp_path / "cold"
    roomy = ["--levels", "2", "--codebook-size", "16", "--joint-epochs", "1", "--no-progress"]
    result = CliRunner().invoke(app, ["build", "--users", str(users_file), "--out", str(out), *roomy,
                                      "--cache-dir", str(tmp_path / "cache"), "--cold-share", "0.3",
                                      "--cold-seed", "1"])
    assert result.exit_code == 0, result.output
    index = load_index(out)
    ids = [json.loads(line)["user_id"] for line in users_file.read_text().splitlines()]
    expected = [u for u in ids if is_cold(u, 0.3, seed=1)]
    assert 0 < len(expected) < len(ids)
    assert sorted(index.cold_users) == sorted(expected)
    assert (index.cold_share, index.cold_seed) == (0.3, 1)
    assert set(index.codes) == set(ids)
    codes = [tuple(c) for c in index.codes.values()]
    assert len(set(codes)) == len(codes)
    assert f"{len(expected)} cold-start users encoded after the fit" in result.output
    refused = CliRunner().invoke(app, ["build", "--users", str(users_file), "--out", str(tmp_path / "x"),
                                       *SMALL, "--cold-share", "0.99"])
    assert refused.exit_code != 0
    assert "users on both sides" in str(refused.exception or refused.output)


def test_probe_finds_the_theme_in_the_codes_and_nothing_in_shuffled_labels(built: Path,
                                                                           tmp_path: Path) -> None:
    """The themed users' first code predicts their theme far above the majority label; the same codes
    against labels shuffled among users predict about nothing."""
    import random

    from index_fixtures import theme_of

    users = [str(r["user_id"]) for r in themed_users()]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"user_id": u, "label": theme_of(u)}) + "\n" for u in users))
    result = CliRunner().invoke(app, ["probe", str(built), "--labels", str(labels), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["users"] == len(users)                        # "quiet" has a code but no label: left out
    assert report["prefixes"][0]["accuracy"] > report["majority"] + 0.4
    shuffled_themes = [theme_of(u) for u in users]
    random.Random(0).shuffle(shuffled_themes)
    labels.write_text("".join(json.dumps({"user_id": u, "label": t}) + "\n"
                              for u, t in zip(users, shuffled_themes, strict=True)))
    result = CliRunner().invoke(app, ["probe", str(built), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    first = float(result.output.split("first 1 code(s): accuracy ")[1].split()[0])
    assert first < report["majority"] + 0.15
    labels.write_text('{"user_id": "a", "label": "x"}\n{"user_id": "a", "label": "y"}\nnot json\n')
    bad = CliRunner().invoke(app, ["probe", str(built), "--labels", str(labels)])
    assert bad.exit_code != 0
    assert "two labels" in str(bad.output) + str(bad.exception)
