"""`ulmrec tui` in a real terminal (tmux): launch a stage, kill the terminal, reattach from a new one and
see the stage still running, then done. Skipped where tmux is not installed (apt-get install tmux)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import BIN, ENV, manifest, ulmrec, write_config

from ulmrec_app.pipeline.manifest import process_alive

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install -y tmux)")


class Tmux:
    """One detached tmux session of 80×24 running a command."""

    def __init__(self, name: str, command: str, cwd: Path) -> None:
        self.name = name
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in
                       {**{k: ENV[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")},
                        "ULMREC_TUI_NO_TORCH": "1", "TERM": "xterm-256color"}.items())
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", str(cwd),
                        f"env {env} {command}"], check=True)
        # keep the pane (and whatever the app printed) if the app exits, so a failure shows why
        subprocess.run(["tmux", "set-option", "-t", name, "remain-on-exit", "on"], check=False,
                       capture_output=True)

    def screen(self) -> str:
        done = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=False)
        return done.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:  # the terminal queues them in order; the app reads them in order (no pause needed)
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=False, capture_output=True)

    def wait(self, check: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"tmux screen never matched; last screen:\n{text}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False, capture_output=True)


@pytest.fixture
def sessions() -> Iterator[list[Tmux]]:
    made: list[Tmux] = []
    yield made
    for session in made:
        session.kill()


def _row(screen: str, stage: str) -> str:
    return next((line for line in screen.splitlines() if line.lstrip().startswith(stage + " ")), "")


def test_launch_detach_reattach_in_tmux(tmp_path: Path, sessions: list[Tmux]) -> None:
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tm.toml", 'name = "tm"\nstages = ["data", "retrieve"]\n'
                                                "[data.synthetic]\nusers = 40\nitems = 30\n"
                                                "[retrieve]\nepochs = 20\npatience = 100\nthreads = 1\n")
    assert ulmrec("run", str(config), "--runs", str(runs), "--stage", "data").returncode == 0
    tui = f"{shlex.quote(str(BIN / 'ulmrec'))} tui runs"
    suffix = f"{os.getpid()}-{time.monotonic_ns()}"

    first = Tmux(f"ulmrec-a-{suffix}", tui, tmp_path)
    sessions.append(first)
    first.wait(lambda s: "tm " in s and "ULMRec runs" in s)
    first.keys("Enter")
    first.wait(lambda s: "run tm" in s and "retrieve" in s)
    first.keys("Down", "l")
    first.wait(lambda s: "running" in _row(s, "retrieve"), timeout=60)
    first.kill()                                            # the terminal goes away ...

    pid = manifest(runs / "tm", "retrieve")["pid"]
    assert isinstance(pid, int)
    assert process_alive(pid)                               # ... the stage does not

    second = Tmux(f"ulmrec-b-{suffix}", tui, tmp_path)
    sessions.append(second)
    second.wait(lambda s: "tm " in s)
    second.keys("Enter")
    screen = second.wait(lambda s: "run tm" in s and "retrieve" in _row(s, "retrieve"))
    if manifest(runs / "tm", "retrieve")["status"] == "running":
        assert "running" in _row(screen, "retrieve"), screen
    second.keys("Down")
    second.wait(lambda s: "done" in _row(s, "retrieve"), timeout=120)
    assert manifest(runs / "tm", "retrieve")["status"] == "done"
