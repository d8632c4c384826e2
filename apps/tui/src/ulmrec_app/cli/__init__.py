"""The commands this app adds to `ulmrec`: run, demo, tui and experiment (one module each)."""

from __future__ import annotations

import typer

from ulmrec_app.cli.demo import demo_command
from ulmrec_app.cli.experiment import app as experiment_app
from ulmrec_app.cli.run import run_command
from ulmrec_app.cli.tui import tui_command


def register(app: typer.Typer) -> None:
    """Mount ``run``, ``demo``, ``tui`` and ``experiment`` on the root ``ulmrec`` app."""
    app.command("run")(run_command)
    app.command("demo")(demo_command)
    app.command("tui")(tui_command)
    app.add_typer(experiment_app, name="experiment")
