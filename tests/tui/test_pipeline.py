"""`ulmrec run`: config errors, skip when unchanged, rerun downstream on a changed input, reuse across
variants, resume after SIGKILL, stop and resume, one runner per run (a lock), --dry-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import BIN, ENV, manifest, tiny_config, ulmrec, wait_for, write_config

from ulmrec_app.pipeline.config import load_config
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.runner import Runner

RETRIEVE = """
stages = ["data", "retrieve"]
[data.synthetic]
users = 40
items = 30
[retrieve]
epochs = {epochs}
patience = 100
threads = 1
"""


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


SYNTH = "\n[data.synthetic]\nusers = 40\n"


@pytest.mark.parametrize(("body", "expected"), [
    ('name = "x"\n[index]\ncodebook_sise = 8' + SYNTH,
     r"index.codebook_sise: not an option of `ulmrec index build`; allowed: .*codebook_size"),
    ('name = "x"\n[index]\nlevels = "many"' + SYNTH, r"index.levels: .*integer.*--levels"),
    ('name = "x"\nstage = ["data"]' + SYNTH, r"stage: unknown key; allowed: .*stages"),
    ('name = "x"\nstages = ["data", "train2"]' + SYNTH,
     r"stages.1: 'train2' is not allowed; allowed: .*'train'"),
    ('name = "x"\n[data.prepare]\nsource = "amazon"\npath = "nowhere"\n',
     r"data.prepare.path: .*nowhere does not exist"),
    ('name = "x"\n[data.prepare]\nsource = "amazon"\n', r"data.prepare: `ulmrec data prepare` needs path"),
    ('name = "x"\n[retrieve]\nout = "elsewhere"' + SYNTH, r"retrieve.out: set by the pipeline"),
    ('name = "x"\n[align]\nindex = "elsewhere"' + SYNTH, r'align.index: only "none"'),
    ('name = "x"\n[retrieve]\nepochs = 3\n[retrieve.tune]\nmax_minutes = 1' + SYNTH,
     r"retrieve.tune: give `ulmrec retrieve tune` options in a \[retrieve.tune\] table and nothing else"),
    ('name = "x"\n[retrieve.tune]\nepochs = 3' + SYNTH,
     r"retrieve.tune.epochs: not an option of `ulmrec retrieve tune`"),
    ('name = "x"\n[index\n', r"invalid TOML"),
    ('name = "bad name"' + SYNTH, r"name: String should match pattern"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, body: str, expected: str) -> None:
    import re

    config = write_config(tmp_path / "bad.toml", body)
    line = _one_line_error(ulmrec("run", str(config), "--runs", str(tmp_path / "runs"), "--dry-run"))
    assert str(config) in line
    assert re.search(expected, line), line
    assert not (tmp_path / "runs").exists()


def test_skip_when_unchanged_and_rerun_downstream_when_config_changes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tiny_config(tmp_path)
    first = ulmrec("run", str(config), "--runs", str(runs))
    assert first.returncode == 0, first.stderr
    data, users = manifest(runs / "tiny", "data"), manifest(runs / "tiny", "users")
    assert data["status"] == users["status"] == "done"
    assert data["figures"]["users"] == 40  # type: ignore[index]
    assert (runs / "tiny" / "users" / "user_texts.jsonl").is_file()

    second = ulmrec("run", str(config), "--runs", str(runs))
    assert second.returncode == 0, second.stderr
    assert "data      skipped: unchanged" in second.stderr
    assert "users     skipped: unchanged" in second.stderr
    assert manifest(runs / "tiny", "users")["finished"] == users["finished"]

    tiny_config(tmp_path, users=45)  # the data stage's settings change: data and everything after it rerun
    third = ulmrec("run", str(config), "--runs", str(runs))
    assert third.returncode == 0, third.stderr
    assert "data      running: config changed" in third.stderr
    assert "users     running: input changed: data" in third.stderr
    assert manifest(runs / "tiny", "data")["figures"]["users"] == 45  # type: ignore[index]


def test_an_output_cut_after_the_stage_is_rerun_not_built_on(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tiny_config(tmp_path)
    assert ulmrec("run", str(config), "--runs", str(runs)).returncode == 0
    texts = runs / "tiny" / "users" / "user_texts.jsonl"
    os.utime(texts)                                   # touched, same content: still unchanged
    again = ulmrec("run", str(config), "--runs", str(runs))
    assert "users     skipped: unchanged" in again.stderr, again.stderr
    lines = texts.read_text(encoding="utf-8").splitlines(keepends=True)
    texts.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    cut = ulmrec("run", str(config), "--runs", str(runs))
    assert cut.returncode == 0, cut.stderr
    assert "data      skipped: unchanged" in cut.stderr
    expected = "users     running: output changed since it was written: user_texts.jsonl"
    assert expected in cut.stderr, cut.stderr
    assert len(texts.read_text(encoding="utf-8").splitlines()) == len(lines)


def test_changed_external_input_reruns_the_stage(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    assert ulmrec("data", "synthetic", "--out", str(raw), "--users", "30", "--items", "30").returncode == 0
    # path is relative to the config's folder
    config = write_config(tmp_path / "ext.toml", 'name = "ext"\nstages = ["data"]\n[data.prepare]\n'
                                                 'source = "amazon"\npath = "raw"\n')
    runs = tmp_path / "runs"
    assert ulmrec("run", str(config), "--runs", str(runs)).returncode == 0
    assert "skipped" in ulmrec("run", str(config), "--runs", str(runs)).stderr
    assert ulmrec("data", "synthetic", "--out", str(raw), "--users", "35", "--items", "30").returncode == 0
    again = ulmrec("run", str(config), "--runs", str(runs))
    assert "data      running: input changed: data prepare --path" in again.stderr, again.stderr
    assert manifest(runs / "ext", "data")["figures"]["users"] == 35  # type: ignore[index]


def test_variant_reuses_the_shared_prefix(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = tiny_config(tmp_path, "base")
    variant = write_config(tmp_path / "variant.toml",
                           'extends = "base.toml"\nname = "variant"\n[users]\nskip_empty = true\n')
    assert ulmrec("run", str(base), "--runs", str(runs)).returncode == 0
    result = ulmrec("run", str(variant), "--runs", str(runs))
    assert result.returncode == 0, result.stderr
    assert "data      reused: same config and inputs as base" in result.stderr
    assert "users     running: not run yet" in result.stderr
    assert (runs / "variant" / "data").is_symlink()
    assert (runs / "variant" / "data").resolve() == (runs / "base" / "data").resolve()
    assert not (runs / "variant" / "users").is_symlink()
    # a second run of the variant skips both
    assert "users     skipped" in ulmrec("run", str(variant), "--runs", str(runs)).stderr


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, stages='["data", "users", "index", "retrieve", "align", "train", "rank", '
                                          '"eval"]', extra='[train]\nmodel = "smollm2"\n')
    result = ulmrec("run", str(config), "--runs", str(tmp_path / "runs"), "--dry-run")
    assert result.returncode == 0, result.stderr
    for stage in ("data", "users", "index", "retrieve", "align", "train", "rank", "eval"):
        assert f"  {stage:<9} run" in result.stdout
    assert "$ ulmrec data synthetic --out" in result.stdout
    assert "$ ulmrec align build" in result.stdout
    assert "--candidates" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_every_shipped_config_passes_dry_run(tmp_path: Path) -> None:
    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))
    assert len(configs) >= 4
    for config in configs:
        result = ulmrec("run", str(config), "--runs", str(tmp_path / "runs"), "--dry-run")
        assert result.returncode == 0, (config, result.stderr)
        assert "plan of run" in result.stdout


def test_packaged_demo_configs_match_configs_folder() -> None:
    from ulmrec_app.pipeline.demo import demo_configs

    root = Path(__file__).resolve().parents[2] / "configs"
    ours, baseline = demo_configs()
    for packaged, mirror in ((ours, root / "demo-cpu.toml"), (baseline, root / "demo-cpu-noindex.toml")):
        loaded = load_config(mirror)
        assert loaded.model_dump() == packaged.model_dump()
    assert ours.uses_index
    assert not baseline.uses_index


def _start_run(config: Path, runs: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "ulmrec"), "run", str(config), "--runs", str(runs)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_and_second_runner_refused(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # enough epochs that the first run is still training when the second runner starts (6 epochs of 40 users
    # could end within the second runner's start-up on a quiet machine, and then nothing was locked)
    config = write_config(tmp_path / "r.toml", 'name = "r"' + RETRIEVE.format(epochs=300))
    runner = _start_run(config, runs)
    folder = runs / "r" / "retrieve"
    assert wait_for(lambda: (folder / "retriever" / "checkpoint.safetensors").exists(), timeout=120)
    # a second runner of the same run is refused while the first holds the lock
    second = ulmrec("run", str(config), "--runs", str(runs))
    assert "already being run by another `ulmrec run`" in _one_line_error(second)
    # kill -9 the runner and the stage's whole process group
    stage_pid = int(manifest(runs / "r", "retrieve")["pid"])  # type: ignore[call-overload]
    os.kill(runner.pid, signal.SIGKILL)
    os.killpg(stage_pid, signal.SIGKILL)
    runner.wait()
    assert wait_for(lambda: not _alive(stage_pid))
    assert manifest(runs / "r", "retrieve")["status"] == "running"  # it never got to write its end
    result = ulmrec("run", str(config), "--runs", str(runs))
    assert result.returncode == 0, result.stderr
    assert "retrieve  resuming: failed attempt left a checkpoint" in result.stderr
    final = manifest(runs / "r", "retrieve")
    assert final["status"] == "done"
    assert final["resumed"] is True
    assert "--resume" in " ".join(final["commands"][0])  # type: ignore[index]
    assert "skipped" in ulmrec("run", str(config), "--runs", str(runs)).stderr


def _alive(pid: int) -> bool:
    from ulmrec_app.pipeline.manifest import process_alive

    return process_alive(pid)


def test_detach_stop_and_resume(tmp_path: Path) -> None:
    from ulmrec_app.pipeline.manifest import StageManifest

    runs = tmp_path / "runs"
    config = write_config(tmp_path / "d.toml", 'name = "d"' + RETRIEVE.format(epochs=40))
    started = ulmrec("run", str(config), "--runs", str(runs), "--detach")
    assert started.returncode == 0, started.stderr
    assert "started in the background" in started.stdout
    folder = runs / "d" / "retrieve"
    assert wait_for(lambda: (folder / "retriever" / "checkpoint.safetensors").exists(), timeout=120), \
        (runs / "d" / "run.log").read_text()
    running = StageManifest.load(folder)
    assert running.effective_status() == "running"
    stop = ulmrec("run", str(config), "--runs", str(runs), "--stop", "--stage=retrieve")   # as the TUI's x
    assert stop.returncode == 0, stop.stderr
    assert f"stopping retrieve (pid {running.pid}); it can be resumed" in stop.stdout
    assert wait_for(lambda: StageManifest.load(folder).status != "running", timeout=60)
    stopped = StageManifest.load(folder)
    assert stopped.status == "stopped", stopped
    assert wait_for(lambda: not _alive(running.pid or 0))
    # the detached runner ends once its stage stopped; then the stage resumes from its checkpoint
    assert wait_for(lambda: "stage retrieve was stopped" in (runs / "d" / "run.log").read_text(), timeout=30)
    result = Runner(load_config(config), runs).dry_run()
    assert "retrieve  resume" in result
    idle = ulmrec("run", str(config), "--runs", str(runs), "--stop")
    assert idle.stdout.strip() == "run d: nothing is running"


def test_a_refused_background_run_reports_its_own_error_from_the_shared_log() -> None:
    """The run that took the lock keeps writing to the shared run.log after the refused one exited: the
    refused start reports its own error line, not the other run's progress (seen under load in CI)."""
    from ulmrec_app.pipeline.runner import child_error

    assert child_error(["ulmrec: error: run two is already being run (pid 7)",
                        "data      running: not run yet"]) == "run two is already being run (pid 7)"
    assert child_error(["ulmrec: error: first", "ulmrec: error: second", "x"]) == "second"
    assert child_error(["Traceback (most recent call last):", "KeyError: 'x'"]) == "KeyError: 'x'"
    assert child_error([]) is None


def test_two_detached_starts_at_once_start_one_run(tmp_path: Path) -> None:
    """Two ``run --detach`` of one run started together: one says it started, the other says the run is
    already being run (exit 1) — the parent waits for its child to hold the run's lock before saying so."""
    from ulmrec_app.pipeline.manifest import StageManifest

    runs = tmp_path / "runs"
    config = write_config(tmp_path / "two.toml", 'name = "two"' + RETRIEVE.format(epochs=40))
    argv = [sys.executable, "-m", "ulmrec_app.main", "run", str(config), "--runs", str(runs), "--detach"]
    both = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in both]
    try:
        assert sorted(code for code, _, _ in results) == [0, 1], results
        started = next(out for code, out, _ in results if code == 0)
        refused = next(err for code, _, err in results if code == 1)
        assert "started in the background" in started
        assert "already being run" in refused
        assert len(refused.strip().splitlines()) == 1
    finally:
        ulmrec("run", str(config), "--runs", str(runs), "--stop")
        folder = runs / "two" / "retrieve"
        if (folder / "stage.json").is_file():
            pid = StageManifest.load(folder).pid or 0
            assert wait_for(lambda: not _alive(pid), timeout=60)


def test_unknown_stage_option_of_runner(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    with pytest.raises(PipelineError, match="--stage nope: not a stage of run tiny; allowed: data, users"):
        Runner(load_config(config), tmp_path / "runs").run(stage="nope")


def test_help_lists_run_demo_tui() -> None:
    result = subprocess.run([sys.executable, "-m", "ulmrec_app.main", "--help"], capture_output=True,
                            text=True, check=False)
    for name in ("run", "demo", "tui"):
        assert f" {name} " in result.stdout


def test_runner_survives_a_hangup(tmp_path: Path) -> None:
    """The terminal or SSH connection goes away (SIGHUP, pipes closed): the run still finishes every stage."""
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "h.toml", 'name = "h"' + RETRIEVE.format(epochs=6).replace(
        '"retrieve"]', '"retrieve", "eval"]'))
    runner = _start_run(config, runs)
    assert wait_for(lambda: (runs / "h" / "retrieve" / "stage.json").is_file(), timeout=120)
    os.kill(runner.pid, signal.SIGHUP)
    assert runner.stdout is not None
    assert runner.stderr is not None
    runner.stdout.close()
    runner.stderr.close()
    assert runner.wait(timeout=240) == 0
    assert manifest(runs / "h", "eval")["status"] == "done"
    assert "eval      done" in (runs / "h" / "run.log").read_text()


@pytest.mark.parametrize(("name", "body", "expected"), [
    ("dup.toml", 'name = "x"\n[index]\nlevels = 3\nlevels = 4\n',
     r"dup.toml:4: invalid TOML: a key or table given twice"),
    ("dup2.toml", 'name = "x"\n[index]\nlevels = 3\n[index]\nseed = 1\n', r"dup2.toml:4: .*given twice"),
    ("dup.yaml", "name: x\nindex:\n  levels: 3\n  seed: 1\n  levels: 4\n",
     r"dup.yaml:5: key 'levels' given twice \(first on line 3\)"),
    ("bad.yaml", "name: x\nindex:\n  levels: [3\n  seed: 1\n", r"bad.yaml:4: invalid YAML: expected ','"),
])
def test_config_syntax_errors_and_repeated_keys_name_the_line(tmp_path: Path, name: str, body: str,
                                                             expected: str) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml", reason="PyYAML is not installed")
    (tmp_path / name).write_text(body, encoding="utf-8")
    with pytest.raises(PipelineError, match=expected):
        load_config(tmp_path / name)


def test_yaml_config_reads_like_toml(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML is not installed")
    toml = tiny_config(tmp_path, "same")
    (tmp_path / "same.yaml").write_text('name: same\nstages: [data, users]\ndata:\n  synthetic:\n'
                                        '    users: 40\n    items: 30\n')
    assert load_config(tmp_path / "same.yaml").model_dump() == load_config(toml).model_dump()
    (tmp_path / "bad.yaml").write_text("name: same\ndata:\n  synthetic: {users: 40}\nindex:\n  bogus: 1\n")
    with pytest.raises(PipelineError, match=r"bad.yaml: index.bogus: not an option"):
        Runner(load_config(tmp_path / "bad.yaml"), tmp_path / "runs")


def test_stop_right_after_launch_is_stopped_not_failed(tmp_path: Path) -> None:
    """A stop that reaches the stage process while it is still starting is recorded as stopped."""
    from ulmrec_app.pipeline.manifest import StageManifest
    from ulmrec_app.pipeline.runner import stop_stage

    runs = tmp_path / "runs"
    config = write_config(tmp_path / "q.toml", 'name = "q"' + RETRIEVE.format(epochs=40))
    assert ulmrec("run", str(config), "--runs", str(runs), "--stage", "data").returncode == 0
    assert ulmrec("run", str(config), "--runs", str(runs), "--detach").returncode == 0
    folder = runs / "q" / "retrieve"
    assert wait_for(lambda: (folder / "stage.json").is_file(), timeout=60, step=0.01)
    assert stop_stage(StageManifest.load(folder))
    assert wait_for(lambda: StageManifest.load(folder).effective_status() != "running", timeout=90)
    assert StageManifest.load(folder).status == "stopped"


def test_retrieve_tune_table_runs_the_validation_search(tmp_path: Path) -> None:
    """[retrieve.tune] makes the retrieve stage `ulmrec retrieve tune`; its selected model feeds eval."""
    import json

    body = ('name = "tuned"\nstages = ["data", "retrieve"]\n[data.synthetic]\nusers = 40\nitems = 30\n'
            '[retrieve.tune]\nmax_trials = 2\nmax_minutes = 5\nconfig = "base.json"\n')
    (tmp_path / "base.json").write_text(json.dumps({"model": {"hidden_size": 8}, "train": {
        "epochs": 2, "batch_size": 8, "num_threads": 1}}))
    config = write_config(tmp_path / "tuned.toml", body)
    runs = tmp_path / "runs"
    plan = ulmrec("run", str(config), "--runs", str(runs), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "ulmrec retrieve tune --data" in plan.stdout + plan.stderr
    assert "--max-trials 2" in plan.stdout + plan.stderr
    result = ulmrec("run", str(config), "--runs", str(runs))
    assert result.returncode == 0, result.stderr
    retriever = runs / "tuned" / "retrieve" / "retriever"
    report = json.loads((retriever / "tune.json").read_text())
    assert len(report["trials"]) == 2
    assert (retriever / "candidates.jsonl").is_file()
    assert manifest(runs / "tuned", "retrieve")["status"] == "done"


def test_a_killed_tune_stage_resumes_its_search(tmp_path: Path) -> None:
    """kill -9 during trial 1 of [retrieve.tune]: the rerun resumes (--resume) and keeps trial 0."""
    import json

    (tmp_path / "base.json").write_text(json.dumps({"model": {"hidden_size": 8}, "train": {
        "epochs": 300, "patience": 300, "batch_size": 8, "num_threads": 1}}))
    body = ('name = "t"\nstages = ["data", "retrieve"]\n[data.synthetic]\nusers = 40\nitems = 30\n'
            '[retrieve.tune]\nmax_trials = 2\nmax_minutes = 60\nconfig = "base.json"\n')
    config = write_config(tmp_path / "t.toml", body)
    runs = tmp_path / "runs"
    trials = runs / "t" / "retrieve" / "retriever.trials"
    runner = _start_run(config, runs)
    assert wait_for(lambda: (trials / "000" / "trial.json").exists(), timeout=120)
    first = (trials / "000" / "trial.json").read_text()
    stage_pid = int(manifest(runs / "t", "retrieve")["pid"])  # type: ignore[call-overload]
    os.kill(runner.pid, signal.SIGKILL)
    os.killpg(stage_pid, signal.SIGKILL)
    runner.wait()
    result = ulmrec("run", str(config), "--runs", str(runs))
    assert result.returncode == 0, result.stderr
    assert "retrieve  resuming: failed attempt left a checkpoint" in result.stderr
    assert (trials / "000" / "trial.json").read_text() == first
    report = json.loads((runs / "t" / "retrieve" / "retriever" / "tune.json").read_text())
    assert [t["index"] for t in report["trials"]] == [0, 1]
