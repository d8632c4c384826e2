"""Run a Typer app as a console script: known errors become one line on stderr and a non-zero exit.

Set ``ULMREC_DEBUG=1`` to get the full traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import typer
import typer.main

from ulmrec_eval.runtime.errors import CommandInterruptedError, is_user_error, one_line

#: Exit status for a known (user-facing) error.
EXIT_USER_ERROR = 1
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130

# typer >= 0.20 vendors click as ``typer._click`` (its exceptions are not ``click``'s); older typer uses
# ``click`` itself, which newer typer no longer installs. Catch whichever of the two are present.
_EXCEPTION_MODULES = ("click.exceptions", "typer._click.exceptions", "typer.exceptions")


def _exception_classes(name: str) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module_name in _EXCEPTION_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in found:
            found.append(cls)
    return tuple(found)


#: Libraries whose log warnings are not the user's business (shown with ``ULMREC_DEBUG=1``).
QUIET_LOGGERS = ("bitsandbytes", "kernels", "huggingface_hub", "transformers", "peft", "accelerate", "torch",
                 "sentence_transformers")


def quiet_third_party() -> None:
    """Unless ``ULMREC_DEBUG`` is set: third-party loggers report errors only, and FutureWarning /
    DeprecationWarning lines (all raised by libraries, never by ulmrec) are not printed."""
    if os.environ.get("ULMREC_DEBUG"):
        return
    import logging
    import warnings

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


_EXIT = _exception_classes("Exit")
_CLICK_ERROR = _exception_classes("ClickException")
_ABORT = _exception_classes("Abort")


def run_app(app: typer.Typer, *, prog_name: str, argv: list[str] | None = None) -> NoReturn:
    """Invoke ``app`` like a console script and exit with its status."""
    command = typer.main.get_command(app)
    quiet_third_party()
    try:
        result = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except _EXIT as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except _CLICK_ERROR as exc:
        exc.show()  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    except _ABORT:
        print("Aborted.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except CommandInterruptedError as exc:   # a command's own Ctrl-C line (what it kept, how to resume)
        print(exc, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if os.environ.get("ULMREC_DEBUG") or not is_user_error(exc):
            raise
        print(f"{prog_name}: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    if result == EXIT_INTERRUPTED:   # typer turns Ctrl-C inside a command into this status, silently
        print("Interrupted.", file=sys.stderr)
    sys.exit(result if isinstance(result, int) else 0)
