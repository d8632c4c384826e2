"""Options shared by the app's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunsOpt = Annotated[Path, typer.Option("--runs", help="Runs folder: each run is runs/<name>/<stage>/.")]
