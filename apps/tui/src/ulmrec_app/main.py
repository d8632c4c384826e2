"""The ``ulmrec`` command: one Typer app whose sub-commands come from the entry-point group ``ulmrec.cli``.

Each package registers its own sub-app (``eval``, ``index``, ``data``, ``retrieve`` ...), so ``ulmrec eval …``
and ``ulmrec-eval …`` run the same code; this app adds ``run``, ``demo`` and ``tui``. Sub-app modules import
nothing heavy at module level, which keeps
``ulmrec --help`` well under a second.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from ulmrec_app import __version__
from ulmrec_app.run_cli import register
from ulmrec_eval.runtime.cli import run_app

ENTRY_POINT_GROUP = "ulmrec.cli"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ulmrec {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The root app with every registered sub-app mounted under its entry-point name."""
    app = typer.Typer(
        name="ulmrec",
        help="ULMRec: user-centric LLM sequential recommendation.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        """ULMRec: user-centric LLM sequential recommendation."""

    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        sub_app = entry.load()
        app.add_typer(sub_app, name=entry.name)
    register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``ulmrec``."""
    run_app(build_app(), prog_name="ulmrec", argv=argv)


if __name__ == "__main__":
    main()
