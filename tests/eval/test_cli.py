"""The ``ulmrec-eval`` / ``ulmrec eval`` command: CliRunner, console script, errors, no torch import."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import run_console
from typer.testing import CliRunner

from ulmrec_eval.cli import app, main
from ulmrec_eval.schemas import ComparisonReport, EvalResult

runner = CliRunner()
BIN = Path(sys.executable).parent


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def predictions(tmp_path: Path) -> Path:
    # 6 users, top-3 retrieved: ranks 1, 2, 3, 1, miss (not retrieved), miss
    rows: list[dict[str, object]] = [
        {"user_id": "u0", "target": 10, "ranked": [10, 11, 12], "history_length": 4},
        {"user_id": "u1", "target": 11, "ranked": [10, 11, 12], "history_length": 6},
        {"user_id": "u2", "target": 12, "candidates": [10, 11, 12], "scores": [0.3, 0.2, 0.1],
         "history_length": 12},
        {"user_id": "u3", "target": 12, "candidates": [10, 11, 12], "scores": [0.3, 0.2, 0.9]},
        {"user_id": "u4", "target": 99, "ranked": [10, 11, 12]},
        {"user_id": "u5", "target": 98, "candidates": [10, 11, 12], "scores": [0.3, 0.2, 0.1]},
    ]
    return _write(tmp_path / "preds.jsonl", rows)


def test_metrics_json(predictions: Path) -> None:
    result = runner.invoke(app, ["metrics", str(predictions), "--k", "1,3,5", "--retrieved-n", "3", "--json"])
    assert result.exit_code == 0, result.output
    parsed = EvalResult.model_validate_json(result.stdout)
    subset, overall = parsed.reports
    assert subset.n_users == 4
    assert subset.metrics["recall@1"] == 0.5
    assert subset.metrics["mrr@3"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 4)
    assert overall.metrics["recall@3"] == pytest.approx(4 / 6)
    assert overall.metrics["ndcg@3"] == pytest.approx((2 + 1 / math.log2(3) + 0.5) / 6)
    assert overall.omitted_ks == [5]
    assert [b.n_users for b in subset.buckets][:3] == [1, 1, 1]


def test_metrics_table_and_out_file(predictions: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "eval.json"
    result = runner.invoke(app, ["metrics", str(predictions), "--retrieved-n", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "subset — target in the retrieved top-3: 4 of 6 users" in result.stdout
    assert "overall — all 6 users, target outside the top-3 = miss" in result.stdout
    assert "recall (= hit rate)" in result.stdout
    assert "by history length" in result.stdout
    saved = EvalResult.model_validate_json(out.read_text())
    assert saved.scope("subset").metrics["recall@1"] == 0.5
    full = runner.invoke(app, ["metrics", str(predictions), "--k", "2"])
    assert "full — all 6 users" in full.stdout


def test_compare_json_and_table(predictions: Path, tmp_path: Path) -> None:
    better = _write(tmp_path / "better.jsonl", [
        {"user_id": f"u{i}", "target": 1, "ranked": [1]} for i in range(6)])
    # B must have the same targets as A: rewrite A's targets to 1 so the systems are comparable
    base = _write(tmp_path / "base.jsonl", [
        {"user_id": f"u{i}", "target": 1, "ranked": [2, 1] if i < 3 else [0]} for i in range(6)])
    result = runner.invoke(app, ["compare", str(base), str(better), "--metric", "recall@1,ndcg@10",
                                 "--resamples", "500", "--json"])
    assert result.exit_code == 0, result.output
    report = ComparisonReport.model_validate_json(result.stdout)
    assert [c.metric for c in report.comparisons] == ["recall@1", "ndcg@10"]
    assert report.comparisons[0].difference == 1.0
    assert report.comparisons[0].n_resamples == 500
    table = runner.invoke(app, ["compare", str(base), str(better)])
    assert table.exit_code == 0, table.output
    assert "B − A" in table.stdout
    assert "ndcg@10" in table.stdout
    mismatch = runner.invoke(app, ["compare", str(predictions), str(better)])
    assert mismatch.exit_code != 0
    assert "target" in str(mismatch.exception)


@pytest.mark.parametrize(("args", "message"), [
    (["--k", "1,x"], "comma-separated integers"),
    (["--k", "0"], "positive integers"),
    (["--retrieved-n", "0"], "retrieved-n"),
])
def test_bad_options(predictions: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["metrics", str(predictions), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_bad_metric_name(predictions: Path) -> None:
    result = runner.invoke(app, ["compare", str(predictions), str(predictions), "--metric", "map@10"])
    assert result.exit_code == 2
    assert "unknown metric" in result.output


def test_known_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": 1, "target": 2, "ranked": [2]}\n{"user_id": 2, "target": }\n',
                   encoding="utf-8")
    monkeypatch.delenv("ULMREC_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["ulmrec-eval", "metrics", str(bad)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == f"ulmrec-eval: error: {bad}:2: malformed JSON (Expecting value)"
    missing = _write(tmp_path / "missing.jsonl", [{"user_id": 1, "ranked": [2]}])
    monkeypatch.setattr(sys, "argv", ["ulmrec-eval", "metrics", str(missing)])
    with pytest.raises(SystemExit):
        main()
    assert f"{missing}:1: invalid RankedPrediction: target: Field required" in capsys.readouterr().err


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_console(Path(script).name, *args, unset=("ULMREC_DEBUG",), timeout=120)


def test_console_script_subprocess(predictions: Path, tmp_path: Path) -> None:
    script = BIN / "ulmrec-eval"
    if not script.exists():
        pytest.skip(f"console script not installed at {script}")
    ok = _run(str(script), "metrics", str(predictions), "--json", "--k", "1,3")
    assert ok.returncode == 0, ok.stderr
    assert EvalResult.model_validate_json(ok.stdout).scope("full").metrics["recall@3"] == pytest.approx(4 / 6)
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"user_id": 1, "target": 1, "candidates": [1, 2], "scores": [NaN, 1.0]}\n',
                   encoding="utf-8")
    bad = _run(str(script), "metrics", str(nan))
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert f"{nan}:1:" in bad.stderr
    assert "NaN" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_umbrella_command_mounts_eval(predictions: Path) -> None:
    script = BIN / "ulmrec"
    if not script.exists():
        pytest.skip(f"umbrella command not installed at {script}")
    ok = _run(str(script), "eval", "metrics", str(predictions), "--json", "--k", "1")
    assert ok.returncode == 0, ok.stderr
    assert EvalResult.model_validate_json(ok.stdout).reports[0].metrics["recall@1"] == pytest.approx(2 / 6)


def test_import_never_loads_torch() -> None:
    code = ("import sys, ulmrec_eval, ulmrec_eval.cli, ulmrec_eval.metrics, ulmrec_eval.evaluation, "
            "ulmrec_eval.predictions, ulmrec_eval.arrays, ulmrec_eval.compare, ulmrec_eval.schemas\n"
            "from ulmrec_eval import compute_metrics, target_ranks\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_cli_module_is_light() -> None:
    code = "import sys, ulmrec_eval.cli\nassert 'numpy' not in sys.modules, sorted(sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_a_missing_input_file_is_one_plain_line(tmp_path: Path) -> None:
    """A command that opens a file that does not exist ends in one line naming it, not ``[Errno 2] ...``."""
    missing = tmp_path / "nowhere" / "candidates.jsonl"
    script = ("import pathlib, typer\n"
              "from ulmrec_eval.runtime.cli import run_app\n"
              "app = typer.Typer()\n"
              "@app.command()\n"
              "def read(path: str) -> None:\n"
              "    pathlib.Path(path).open().read()\n"
              "run_app(app, prog_name='ulmrec', argv=[" + repr(str(missing)) + "])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "ULMREC_DEBUG": ""})
    assert proc.returncode == 1
    assert proc.stderr == f"ulmrec: error: {missing}: no such file or directory\n"


def test_one_line_formats_file_system_errors() -> None:
    from ulmrec_eval.runtime.errors import InputError, one_line

    assert one_line(FileNotFoundError(2, "No such file or directory", "/x/y.jsonl")) == (
        "/x/y.jsonl: no such file or directory")
    assert one_line(PermissionError(13, "Permission denied", "/x")) == "/x: permission denied"
    assert one_line(OSError(18, "Invalid cross-device link", "/a", None, "/b")) == (
        "/a -> /b: invalid cross-device link")
    assert one_line(InputError("bad value", path="f.json", line=3)) == str(InputError("bad value",
                                                                                      path="f.json", line=3))


def test_ctrl_c_in_a_command_is_one_line_and_status_130(tmp_path: Path) -> None:
    """SIGINT while a command runs: no traceback, `Interrupted.`, status 130 (typer alone is silent)."""
    import signal
    import time

    script = ("import time, typer\n"
              "from ulmrec_eval.runtime.cli import run_app\n"
              "app = typer.Typer()\n"
              "@app.command()\n"
              "def slow(n: int = 1) -> None:\n"
              "    print('started', flush=True)\n"
              "    time.sleep(60)\n"
              "@app.command()\n"
              "def other() -> None:\n"
              "    pass\n"
              "run_app(app, prog_name='ulmrec', argv=['slow'])\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "ULMREC_DEBUG": ""},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err == "Interrupted.\n"


def test_a_commands_own_ctrl_c_line_is_the_only_line() -> None:
    """A command that kept its work raises CommandInterruptedError: its message alone, status 130."""
    script = ("import typer\n"
              "from ulmrec_eval.runtime.cli import run_app\n"
              "from ulmrec_eval.runtime.errors import CommandInterruptedError\n"
              "app = typer.Typer()\n"
              "@app.command()\n"
              "def work(n: int = 1) -> None:\n"
              "    raise CommandInterruptedError('Interrupted: kept in X; continue with --resume.')\n"
              "@app.command()\n"
              "def other() -> None:\n"
              "    pass\n"
              "run_app(app, prog_name='ulmrec', argv=['work'])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "ULMREC_DEBUG": ""})
    assert proc.returncode == 130
    assert proc.stderr == "Interrupted: kept in X; continue with --resume.\n"


def test_third_party_warnings_are_quiet_unless_debugging() -> None:
    """Issue 15: bitsandbytes' 'Failed to load CPU gemm_4bit_forward' and FutureWarning lines came before
    every torch command's own output."""
    import os
    import subprocess
    import sys

    script = ("import logging, warnings, sys\n"
              "from ulmrec_eval.runtime.cli import quiet_third_party\n"
              "logging.basicConfig()\n"
              "quiet_third_party()\n"
              "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('Failed to load CPU gemm')\n"
              "warnings.warn('old api', FutureWarning)\n"
              "print('own output', file=sys.stderr)\n")
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={k: v for k, v in os.environ.items() if k != "ULMREC_DEBUG"})
    assert quiet.stderr == "own output\n"
    loud = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, "ULMREC_DEBUG": "1"})
    assert "Failed to load CPU gemm" in loud.stderr
    assert "old api" in loud.stderr
