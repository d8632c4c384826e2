"""The ``ulmrec`` command: one Typer app whose sub-commands come from the entry-point group ``ulmrec.cli``.

Each package registers its own sub-app (``eval``, ``index``, ``data``, ``retrieve`` ...), so ``ulmrec eval …``
and ``ulmrec-eval …`` run the same code; this app adds ``run``, ``demo`` and ``tui``. Sub-app modules import
nothing heavy at module level, which keeps
``ulmrec --help`` well under a second.
"""

from __future__ import annotations

import typer

from ulmrec_app import __version__
from ulmrec_app.cli import register
from ulmrec_app.cli_tree import ENTRY_POINT_GROUP, build_tree
from ulmrec_eval.runtime.cli import run_app

__all__ = ["ENTRY_POINT_GROUP", "build_app", "main"]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ulmrec {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The root app: every registered sub-app (:func:`~ulmrec_app.cli_tree.build_tree`) plus ``run``,
    ``demo`` and ``tui``."""
    app = build_tree()

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        """ULMRec: user-centric LLM sequential recommendation."""

    register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``ulmrec``."""
    run_app(build_app(), prog_name="ulmrec", argv=argv)


if __name__ == "__main__":
    main()
