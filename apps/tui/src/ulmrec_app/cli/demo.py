"""``ulmrec demo``: the main job on CPU (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ulmrec_app.cli.options import RunsOpt


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
