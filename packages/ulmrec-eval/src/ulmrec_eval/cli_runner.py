"""Run a Typer app as a console script: known errors become one line on stderr and a non-zero exit.

Set ``ULMREC_DEBUG=1`` to get the full traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click
import typer
import typer.main

from ulmrec_eval.errors import is_user_error

#: Exit status for a known (user-facing) error.
EXIT_USER_ERROR = 1


def run_app(app: typer.Typer, *, prog_name: str, argv: list[str] | None = None) -> NoReturn:
    """Invoke ``app`` like a console script and exit with its status."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ULMREC_DEBUG") or not is_user_error(exc):
            raise
        print(f"{prog_name}: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    sys.exit(result if isinstance(result, int) else 0)
