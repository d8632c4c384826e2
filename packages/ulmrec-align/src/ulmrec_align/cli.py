"""The ``ulmrec-align`` command: this package's sub-commands (``data``, ``retrieve``, ``align``) under a root.

The ``align`` group is put together here from the commands of the sub-packages (``tasks/cli.py``: build and
inspect; ``ranking/cli.py``: rank; ``tuning/cli.py``: train); :data:`align_app` is both the entry point
``ulmrec align`` mounts and ``ulmrec-align align``, so the two are one tree.
"""

from __future__ import annotations

import typer

from ulmrec_eval.runtime.cli import run_app


def _align_app() -> typer.Typer:
    """``align``: its commands from the sub-packages (``train`` only when tuning imports)."""
    from ulmrec_align.ranking.cli import rank
    from ulmrec_align.tasks.cli import build, inspect

    app = typer.Typer(name="align", help="Alignment samples, LoRA/QLoRA tuning and LLM ranking.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    app.command("build")(build)
    app.command("rank")(rank)
    app.command("inspect")(inspect)
    try:
        from ulmrec_align.tuning.cli import train_command
    except ImportError:  # tuning is optional at import time; `align train` is then absent
        return app
    app.command("train")(train_command)
    return app


#: ``ulmrec align`` (entry point ``ulmrec.cli``) and ``ulmrec-align align``.
align_app = _align_app()


def build_app() -> typer.Typer:
    """The root app of ``ulmrec-align`` with this package's sub-apps mounted."""
    from ulmrec_align.data.cli import app as data_app
    from ulmrec_align.retrieval.cli import app as retrieve_app

    app = typer.Typer(name="ulmrec-align", help="ULMRec data, retrieval and alignment.", no_args_is_help=True,
                      add_completion=False, pretty_exceptions_enable=False)
    app.add_typer(data_app, name="data")
    app.add_typer(retrieve_app, name="retrieve")
    app.add_typer(align_app, name="align")
    return app


def main() -> None:
    """Console-script entry point."""
    run_app(build_app(), prog_name="ulmrec-align")
