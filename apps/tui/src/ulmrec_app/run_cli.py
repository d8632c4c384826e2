"""``ulmrec run``, ``ulmrec demo`` and ``ulmrec tui``: the commands of this app (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunsOpt = Annotated[Path, typer.Option("--runs", help="Runs folder: each run is runs/<name>/<stage>/.")]


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
    runs: RunsOpt = Path("runs"),
) -> None:
    """Run a config's stages in order: unchanged stages are skipped, killed ones resume."""
    from ulmrec_app.pipeline.config import load_config
    from ulmrec_app.pipeline.runner import Runner
    from ulmrec_app.pipeline.runner import detach as start_detached

    loaded = load_config(config)
    runner = Runner(loaded, runs)
    if dry_run:
        typer.echo(runner.dry_run(stage=stage, from_stage=from_stage, force=force))
        return
    if detach:
        _check_unlocked(runner.run_dir, loaded.name)
        argv = ["run", str(config.resolve()), "--runs", str(runner.runs_dir)]
        argv += [f"--stage={stage}"] * (stage is not None)
        argv += [f"--from={from_stage}"] * (from_stage is not None)
        argv += ["--force"] * force
        pid = start_detached(argv, runner.run_dir)
        typer.echo(f"run {loaded.name} started in the background (pid {pid}); log: {runner.run_dir}/run.log; "
                   f"watch it with `ulmrec tui {runner.runs_dir}`")
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


def demo_command(
    runs: RunsOpt = Path("runs"),
    data: Annotated[Path | None, typer.Option(
        "--data", help="Real data, not the synthetic set: a RecBole folder (*.inter) or raw Amazon files.")
    ] = None,
    users: Annotated[int | None, typer.Option("--users", min=5, help="Synthetic users, or with --data: users "
                                                                     "to align and rank.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="The synthetic world's seed (default 0; its runs "
                                                            "are named demo-seedN).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rerun every stage.")] = False,
) -> None:
    """The main job on CPU: ULMRec against the no-index baseline and the retriever alone, in one table."""
    from ulmrec_app.pipeline.demo import run_demo

    run_demo(runs, data=data, users=users, force=force, seed=seed)


def tui_command(
    runs: Annotated[Path, typer.Argument(metavar="RUNS_DIR", help="Runs folder to show.")] = Path("runs"),
) -> None:
    """Terminal app: runs, stages (launch/stop/resume), logs, results, the user index, the system."""
    from ulmrec_app.tui.app import UlmrecApp

    UlmrecApp(runs).run()


def register(app: typer.Typer) -> None:
    """Mount ``run``, ``demo`` and ``tui`` on the root ``ulmrec`` app."""
    app.command("run")(run_command)
    app.command("demo")(demo_command)
    app.command("tui")(tui_command)
