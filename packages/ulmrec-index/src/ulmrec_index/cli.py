"""The ``ulmrec-index`` command (also ``ulmrec index``). Heavy imports (torch) happen inside commands."""

from __future__ import annotations

import typer

from ulmrec_eval.cli_runner import run_app

app = typer.Typer(name="index", help="Build and inspect semantic user indices.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.command("version")
def version() -> None:
    """Print the package version."""
    from ulmrec_index import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    run_app(app, prog_name="ulmrec-index")
