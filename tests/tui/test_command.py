"""The umbrella `ulmrec` command: sub-commands from entry points, fast help, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import run_console

BIN = Path(sys.executable).parent


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_console(args[0], *args[1:], env=env)


def test_help_lists_every_registered_sub_command() -> None:
    result = _run("ulmrec", "--help")
    assert result.returncode == 0, result.stderr
    for name in ("data", "eval", "index", "retrieve"):
        assert name in result.stdout


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from ulmrec_app.main import build_app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(build_app(), ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("umbrella", "standalone"), [(("ulmrec", "eval"), ("ulmrec-eval",)),
                                                      (("ulmrec", "index"), ("ulmrec-index",)),
                                                      (("ulmrec", "align"), ("ulmrec-align", "align")),
                                                      (("ulmrec", "align", "build"),
                                                       ("ulmrec-align", "align", "build"))])
def test_package_command_and_umbrella_sub_command_are_the_same(
    umbrella: tuple[str, ...], standalone: tuple[str, ...]
) -> None:
    a = _run(*umbrella, "--help")
    b = _run(*standalone, "--help")
    assert a.returncode == b.returncode == 0
    body = [line for line in a.stdout.splitlines() if "Usage" not in line]
    assert body == [line for line in b.stdout.splitlines() if "Usage" not in line]


def test_known_error_is_one_line_and_debug_shows_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "predictions.jsonl"
    bad.write_text('{"user_id": 1, "target": 3, "ranked": [3, 4]}\n{"user_id": 2, "target": \n',
                   encoding="utf-8")
    result = _run("ulmrec", "eval", "metrics", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:2:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    debug = _run("ulmrec", "eval", "metrics", str(bad), env={"ULMREC_DEBUG": "1"})
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr


def test_version() -> None:
    result = _run("ulmrec", "--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("ulmrec ")
