"""Sub-commands of `ulmrec retrieval`. Heavy imports (torch) happen inside commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="retrieval", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("version")
def version() -> None:
    """Print the package version."""
    from ulmrec_align import __version__

    typer.echo(__version__)
