"""The ``ulmrec-eval`` command (also ``ulmrec eval``)."""

from __future__ import annotations

import typer

from ulmrec_eval.cli_runner import run_app

app = typer.Typer(name="eval", help="Ranking metrics and paired comparisons.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.command("version")
def version() -> None:
    """Print the package version."""
    from ulmrec_eval import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    run_app(app, prog_name="ulmrec-eval")
