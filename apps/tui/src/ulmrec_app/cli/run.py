"""``ulmrec run CONFIG``: a config's stages in order (skip, resume, reuse; heavy imports inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ulmrec_app.cli.options import RunsOpt


def run_command(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="Run config (TOML or YAML).")],
    stage: Annotated[str | None, typer.Option("--stage", help="Run only this stage (and the stages it needs "
                                                              "that are not done).")] = None,
    from_stage: Annotated[str | None, typer.Option("--from", help="Rerun this stage and the later ones.")
                          ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rerun selected stages even if unchanged.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background (survives the terminal); "
                                                          "output to runs/<name>/run.log.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and check the inputs; run "
                                                            "nothing.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop this run's running stages (or --stage's): they "
                                                      "save what they can and resume on the next run.")]
    = False,
    runs: RunsOpt = Path("runs"),
) -> None:
    """Run a config's stages in order: unchanged stages are skipped, killed ones resume."""
    from ulmrec_app.pipeline.config import load_config
    from ulmrec_app.pipeline.runner import Runner
    from ulmrec_app.pipeline.runner import detach as start_detached

    loaded = load_config(config)
    runner = Runner(loaded, runs)
    if stop:
        from ulmrec_app.pipeline.runner import stop_running

        lines = stop_running(runner.run_dir, stage)
        typer.echo("\n".join(lines) if lines else f"run {loaded.name}: nothing is running"
                   + (f" in {stage}" if stage else ""))
        return
    if dry_run:
        typer.echo(runner.dry_run(stage=stage, from_stage=from_stage, force=force))
        return
    if detach:
        _check_unlocked(runner.run_dir, loaded.name)
        argv = ["run", str(config.resolve()), "--runs", str(runner.runs_dir)]
        argv += [f"--stage={stage}"] * (stage is not None)
        argv += [f"--from={from_stage}"] * (from_stage is not None)
        argv += ["--force"] * force
        started = start_detached(argv, runner.run_dir)
        if started.finished:
            typer.echo(f"run {loaded.name} ran to its end in the background (pid {started.pid}); log: "
                       f"{runner.run_dir}/run.log")
            return
        typer.echo(f"run {loaded.name} started in the background (pid {started.pid}); log: "
                   f"{runner.run_dir}/run.log; watch it with `ulmrec tui {runner.runs_dir}`")
        return
    runner.run(stage=stage, from_stage=from_stage, force=force)


def _check_unlocked(run_dir: Path, name: str) -> None:
    from ulmrec_app.pipeline.errors import PipelineError
    from ulmrec_eval.runtime.artifacts import ArtifactLockedError, folder_lock

    try:
        with folder_lock(run_dir):
            pass
    except ArtifactLockedError:
        raise PipelineError(f"run {name} is already being run by another `ulmrec run`; wait for it, or stop "
                            f"it from `ulmrec tui`") from None
