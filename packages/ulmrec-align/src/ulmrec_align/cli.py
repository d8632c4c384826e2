"""The ``ulmrec-align`` command: this package's sub-commands (``data``, ``retrieve`` ...) under one root."""

from __future__ import annotations

import typer

from ulmrec_eval.runtime.cli import run_app


def build_app() -> typer.Typer:
    """The root app of ``ulmrec-align`` with this package's sub-apps mounted."""
    from ulmrec_align.data.cli import app as data_app
    from ulmrec_align.retrieval.cli import app as retrieve_app

    app = typer.Typer(name="ulmrec-align", help="ULMRec data, retrieval and alignment.", no_args_is_help=True,
                      add_completion=False, pretty_exceptions_enable=False)
    app.add_typer(data_app, name="data")
    app.add_typer(retrieve_app, name="retrieve")
    return app


def main() -> None:
    """Console-script entry point."""
    run_app(build_app(), prog_name="ulmrec-align")
