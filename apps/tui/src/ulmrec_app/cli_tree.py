"""The tree of ``ulmrec`` sub-commands that packages register in the entry-point group ``ulmrec.cli``.

Each package mounts its own sub-app (``eval``, ``index``, ``data``, ``retrieve``, ``align`` …), so
``ulmrec eval …`` and ``ulmrec-eval …`` run the same code. :mod:`ulmrec_app.main` adds this app's own
commands on top; :mod:`ulmrec_app.pipeline.commands` reads the stage commands' options from the tree.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

ENTRY_POINT_GROUP = "ulmrec.cli"


def build_tree(*, name: str = "ulmrec", help: str = "ULMRec: user-centric LLM sequential recommendation."
               ) -> typer.Typer:
    """A root app with every registered sub-app mounted under its entry-point name."""
    app = typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        app.add_typer(entry.load(), name=entry.name)
    return app
