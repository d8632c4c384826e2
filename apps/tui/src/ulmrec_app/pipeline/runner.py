"""``ulmrec run``: run a config's stages in order, skipping unchanged ones, one stage process at a time.

Each stage runs in a process of its own session (:mod:`ulmrec_app.pipeline.execute`), so it finishes and
records its result even if this runner, the terminal or the SSH connection goes away; a later ``ulmrec run``
(or the TUI) attaches to a stage that is still running. One runner per run: a lock on ``runs/<name>``
refuses a second one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ulmrec_app.pipeline.config import RunConfig
from ulmrec_app.pipeline.decide import Decision, decide, link_reused
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.execute import EVENTS_FILE, LOG_FILE, StageJob, block_stop_signals, write_job
from ulmrec_app.pipeline.manifest import StageManifest, process_alive, process_start_time
from ulmrec_app.pipeline.run_info import RunInfo
from ulmrec_app.pipeline.stages import StagePlan, active_stages, build_plans
from ulmrec_eval.runtime.artifacts import ArtifactLockedError, folder_lock
from ulmrec_eval.runtime.events import StageEvent, tail_events

POLL_SECONDS = 0.5
#: Without a terminal, at most one progress line per stage this often.
PLAIN_PROGRESS_SECONDS = 30.0
RUN_LOG = "run.log"


def _short(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def describe_event(event: StageEvent) -> str:
    parts = []
    if event.step is not None:
        parts.append(f"step {event.step}" + (f"/{event.total}" if event.total else ""))
    if event.loss is not None:
        parts.append(f"loss {event.loss:.4f}")
    for key, value in (event.metric or {}).items():
        parts.append(f"{key} {value:.4f}")
    if event.message:
        parts.append(event.message)
    return ", ".join(parts)


class Reporter:
    """Progress on the runner's stderr: a live bar on a terminal, a line every 30 s otherwise."""

    def __init__(self, stream: IO[str] | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._progress: object | None = None
        self._task: object | None = None
        self._last_plain = 0.0

    def line(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if not self.tty:
            self._last_plain = time.monotonic()
            yield
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn(f"{name:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), console=Console(file=self.stream),
                            transient=True)
        self._progress, self._task = progress, progress.add_task("", total=None)
        with progress:
            yield
        self._progress = self._task = None

    def event(self, name: str, event: StageEvent) -> None:
        text = describe_event(event)
        if self._progress is not None:
            kwargs: dict[str, object] = {"description": text[:60]}
            if event.total:
                kwargs["total"] = event.total
            if event.step is not None:
                kwargs["completed"] = event.step
            self._progress.update(self._task, **kwargs)  # type: ignore[attr-defined]
        elif not self.tty and time.monotonic() - self._last_plain >= PLAIN_PROGRESS_SECONDS and text:
            self._last_plain = time.monotonic()
            self.line(f"  {name}: {text}")


@dataclass
class RunResult:
    name: str
    run_dir: Path
    decisions: dict[str, Decision] = field(default_factory=dict)
    manifests: dict[str, StageManifest] = field(default_factory=dict)


class _Hangup:
    """On SIGHUP (terminal or SSH gone) keep running and send further output to ``run.log``."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __call__(self, signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)


class Runner:
    """Runs one config's stages into ``runs_dir/<name>``."""

    def __init__(self, config: RunConfig, runs_dir: Path, *, reporter: Reporter | None = None) -> None:
        self.config = config
        self.runs_dir = Path(runs_dir).absolute()
        self.run_dir = self.runs_dir / config.name
        self.reporter = reporter or Reporter()
        self.plans = {p.name: p for p in build_plans(config, self.run_dir)}

    # ---------------------------------------------------------------------------------------- selection
    def _selection(self, stage: str | None, from_stage: str | None,
                   force: bool) -> tuple[list[str], set[str]]:
        order = list(self.plans)
        for option, value in (("--stage", stage), ("--from", from_stage)):
            if value is not None and value not in self.plans:
                raise PipelineError(f"{option} {value}: not a stage of run {self.config.name}; "
                                    f"allowed: {', '.join(order)}")
        if stage is not None:
            needed: set[str] = set()
            todo = [stage]
            while todo:
                name = todo.pop()
                if name not in needed:
                    needed.add(name)
                    todo.extend(self.plans[name].depends)
            selected = [s for s in order if s in needed]
            forced_here = {stage} if force else set()
            if from_stage is not None:   # --stage X --from Y: rerun Y and what follows it, up to X
                if from_stage not in selected:
                    raise PipelineError(f"--from {from_stage}: not among the stages --stage {stage} runs "
                                        f"({', '.join(selected)})")
                forced_here |= set(selected[selected.index(from_stage):])
            return selected, forced_here
        forced = set(order) if force else set()
        if from_stage is not None:
            forced |= set(order[order.index(from_stage):])
        return order, forced

    # ------------------------------------------------------------------------------------------ dry run
    def dry_run(self, *, stage: str | None = None, from_stage: str | None = None, force: bool = False) -> str:
        """The plan as text: each stage's action and commands; inputs are checked (missing ones raise)."""
        selected, forced = self._selection(stage, from_stage, force)
        lines = [f"plan of run {self.config.name} ({self.config.source}) in {self.run_dir}"]
        upstream: dict[str, StageManifest] = {}
        changing: set[str] = set()
        for name in selected:
            plan = self.plans[name]
            if not plan.installed:
                action, reason = "run", f"not installed yet: {', '.join(plan.missing_commands)} (settings " \
                                        "unchecked)"
            elif any(dep in changing or dep not in upstream for dep in plan.depends):
                action, reason = "run", "after " + ", ".join(d for d in plan.depends if d in changing
                                                             or d not in upstream)
            else:
                decision = decide(plan, upstream, self.runs_dir, forced=name in forced)
                action, reason = decision.action, decision.reason
                if decision.action in ("skip", "reuse"):
                    source = decision.reuse_from or plan.folder
                    manifest = StageManifest.load_or_none(source)
                    if manifest is not None:
                        upstream[name] = manifest
            if action not in ("skip", "reuse"):
                changing.add(name)
            lines.append(f"  {name:<9} {action:<7} {reason}")
            for command in plan.commands:
                argv = command.argv(resume=plan.resume_option if action == "resume" else None)
                lines.append("      $ " + " ".join(_quote(a) for a in argv))
        inputs = [(k, p) for plan in self.plans.values() for k, p in plan.external_inputs.items()]
        if inputs:
            lines.append("inputs (all present):")
            lines.extend(f"  {key}: {path}" for key, path in inputs)
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------------------- run
    def run(self, *, stage: str | None = None, from_stage: str | None = None,
            force: bool = False) -> RunResult:
        """Run the selected stages; a stage that fails or is stopped raises :class:`PipelineError`."""
        selected, forced = self._selection(stage, from_stage, force)
        missing = [c for name in selected for c in self.plans[name].missing_commands]
        if missing:
            raise PipelineError(f"{self.config.source}: {', '.join(missing)} not installed; run the stages "
                                f"before it with --stage, or leave it out of `stages`")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            with folder_lock(self.run_dir):
                return self._run_locked(selected, forced)
        except ArtifactLockedError:
            holder = _lock_holder(self.run_dir)
            raise PipelineError(f"run {self.config.name} is already being run by another `ulmrec run` "
                                f"(pid {holder}); wait for it, or stop it from `ulmrec tui`") from None

    def _run_locked(self, selected: list[str], forced: set[str]) -> RunResult:
        RunInfo(name=self.config.name, config=str(Path(self.config.source).resolve()),
                description=self.config.description, stages=active_stages(self.config)).save(self.run_dir)
        previous = signal.signal(signal.SIGHUP, _Hangup(self.run_dir / RUN_LOG))
        result = RunResult(name=self.config.name, run_dir=self.run_dir)
        started = time.monotonic()
        try:
            for name in selected:
                plan = self.plans[name]
                upstream = {dep: result.manifests[dep] for dep in plan.depends}
                decision = decide(plan, upstream, self.runs_dir, forced=name in forced)
                result.decisions[name] = decision
                result.manifests[name] = self._apply(plan, decision)
        finally:
            signal.signal(signal.SIGHUP, previous)
        elapsed = _short(time.monotonic() - started)
        self.reporter.line(f"run {self.config.name}: {len(selected)} stages in {elapsed}"
                           f" -> {self.run_dir}")
        return result

    def _apply(self, plan: StagePlan, decision: Decision) -> StageManifest:
        name = plan.name
        if decision.action == "skip":
            manifest = decision.manifest
            assert manifest is not None
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest.finished or 0))
            self.reporter.line(f"{name:<9} skipped: unchanged since {when} ({_short(manifest.elapsed)})")
            return manifest
        if decision.action == "reuse":
            assert decision.reuse_from is not None
            link_reused(plan, decision.reuse_from)
            self.reporter.line(f"{name:<9} reused: {decision.reason} ({decision.reuse_from})")
            return StageManifest.load(plan.folder)
        if decision.action == "wait":
            manifest = decision.manifest
            assert manifest is not None
            self.reporter.line(f"{name:<9} attaching: already running (pid {manifest.pid})")
            return self._watch(plan, lambda: process_alive(manifest.pid, manifest.pid_start), process=None)
        resume = decision.action == "resume"
        self._prepare_folder(plan, resume=resume)
        commands = [c.argv() for c in plan.commands]
        if resume:
            commands[0] = plan.commands[0].argv(resume=plan.resume_option)
        device = next((str(c.settings["device"]) for c in plan.commands if "device" in c.settings), "cpu")
        write_job(plan.folder, StageJob(run=self.config.name, stage=name, commands=commands,
                                        outputs=plan.outputs, config_hash=decision.config_hash,
                                        input_hashes=decision.input_hashes,
                                        effective_options=decision.effective_options,
                                        code_versions=decision.code_versions, resumed=resume, device=device))
        self.reporter.line(f"{name:<9} {'resuming' if resume else 'running'}: {decision.reason}")
        process = spawn_stage(plan.folder)
        StageManifest(stage=name, run=self.config.name, status="running", pid=process.pid,
                      pid_start=process_start_time(process.pid), started=time.time(),
                      config_hash=decision.config_hash, input_hashes=decision.input_hashes,
                      effective_options=decision.effective_options, code_versions=decision.code_versions,
                      commands=commands, outputs=plan.outputs, resumed=resume).save(plan.folder)
        return self._watch(plan, lambda: process.poll() is None, process=process)

    def _prepare_folder(self, plan: StagePlan, *, resume: bool) -> None:
        folder = plan.folder
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists() and not resume:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            (folder / EVENTS_FILE).unlink(missing_ok=True)

    def _watch(self, plan: StagePlan, alive: object, *,
               process: subprocess.Popen[bytes] | None) -> StageManifest:
        name, offset = plan.name, 0
        events_path = plan.folder / EVENTS_FILE
        try:
            with self.reporter.stage(name):
                while alive():  # type: ignore[operator]
                    events, offset = tail_events(events_path, offset)
                    for event in events:
                        self.reporter.event(name, event)
                    time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            manifest = StageManifest.load_or_none(plan.folder)
            if manifest is not None and manifest.pid:
                self.reporter.line(f"{name:<9} stopping (pid {manifest.pid}) …")
                stop_stage(manifest)
                while alive():  # type: ignore[operator]
                    time.sleep(POLL_SECONDS)
            raise PipelineError(f"stopped {name}; continue with `ulmrec run {self.config.source}`") from None
        manifest = StageManifest.load(plan.folder)
        status = manifest.effective_status()
        if status == "failed" and manifest.status == "running" and process is not None:
            code = process.returncode
            manifest.error = f"its process ended before recording a result (exit status {code})"
        if status == "stopped":
            raise PipelineError(f"stage {name} was stopped; continue it with "
                                f"`ulmrec run {self.config.source}`")
        if status != "done":
            log = plan.folder / LOG_FILE
            why = manifest.error or ("its process died" if status == "failed" else status)
            raise PipelineError(f"stage {name} {status}: {why} (log: {log})")
        figures = ", ".join(f"{k} {v}" for k, v in list(manifest.figures.items())[:4])
        took = _short(manifest.elapsed)
        self.reporter.line(f"{name:<9} done in {took}" + (f": {figures}" if figures else ""))
        return manifest


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _lock_holder(run_dir: Path) -> str:
    from ulmrec_eval.runtime.artifacts import lock_path

    try:
        return lock_path(run_dir.absolute()).read_text().strip() or "?"
    except OSError:
        return "?"


def spawn_stage(folder: Path) -> subprocess.Popen[bytes]:
    """Start the stage process of ``folder`` detached: own session, no terminal, output to its log."""
    with (folder / LOG_FILE).open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "ulmrec_app.pipeline.execute", str(folder)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, preexec_fn=block_stop_signals)


def stop_running(run_dir: Path, stage: str | None = None) -> list[str]:
    """Stop the running stages of ``run_dir`` (or only ``stage``): SIGTERM to each stage's process group,
    which saves what it can and records ``stopped``. Returns a line per stage stopped."""
    stopped = []
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir()) if run_dir.is_dir() else []:
        if stage is not None and folder.name != stage:
            continue
        try:
            manifest = StageManifest.load_or_none(folder)
        except Exception:
            continue
        if manifest is not None and manifest.effective_status() == "running" and stop_stage(manifest):
            stopped.append(f"stopping {folder.name} (pid {manifest.pid}); it can be resumed")
    return stopped


def stop_stage(manifest: StageManifest) -> bool:
    """SIGTERM to the stage's process group (its process stops the command gracefully); False if gone."""
    if not manifest.pid or not process_alive(manifest.pid, manifest.pid_start):
        return False
    try:
        os.killpg(manifest.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


#: How ``ulmrec`` begins the one line it prints for an error (``ulmrec_eval.runtime.cli``).
ERROR_PREFIX = "ulmrec: error: "


def child_error(lines: list[str]) -> str | None:
    """The error a failed background run wrote to ``run.log`` (``lines``: what the log gained since it
    started): its last ``ulmrec: error:`` line, else the last line. The log is shared, so the run that took
    the lock may have written after the refused one's error.

    >>> child_error(["ulmrec: error: run two is already being run", "data      running: not run yet"])
    'run two is already being run'
    >>> child_error(["Traceback ...", "KeyError: 'x'"]), child_error([])
    ("KeyError: 'x'", None)
    """
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)] or lines
    return errors[-1].removeprefix(ERROR_PREFIX) if errors else None


@dataclass(frozen=True)
class Detached:
    """A background ``ulmrec run``: its pid, and whether it had already finished (exit 0) when seen."""

    pid: int
    finished: bool = False


def detach(argv: list[str], run_dir: Path, *, timeout: float = 60.0) -> Detached:
    """Start ``ulmrec run …`` (``argv`` without ``--detach``) in its own session, and wait until it holds
    the run's lock (it runs), has exited 0 (nothing was left to run), or ``timeout`` seconds pass.

    A child that exits with an error before taking the lock (another ``ulmrec run`` took it first, a bad
    config) raises :class:`PipelineError` with the last line it wrote to ``run.log``: two ``--detach``
    started together cannot both say "started"."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = run_dir / RUN_LOG
    start = log_file.stat().st_size if log_file.exists() else 0
    with log_file.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "ulmrec_app.main", *argv], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code == 0:
            return Detached(process.pid, finished=True)
        if code is not None:
            with log_file.open("rb") as log:
                log.seek(start)
                lines = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
            raise PipelineError(child_error(lines) or
                                f"the background run exited with status {code} (log: {log_file})")
        if _lock_holder(run_dir) == str(process.pid):
            return Detached(process.pid)
        time.sleep(0.05)
    return Detached(process.pid)
