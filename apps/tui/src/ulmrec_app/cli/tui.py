"""``ulmrec tui RUNS_DIR``: the terminal app (Textual is imported inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def tui_command(
    runs: Annotated[Path, typer.Argument(metavar="RUNS_DIR", help="Runs folder to show.")] = Path("runs"),
) -> None:
    """Terminal app: runs, stages (launch/stop/resume), logs, results, the user index, the system."""
    from ulmrec_app.tui.app import UlmrecApp

    UlmrecApp(runs).run()
