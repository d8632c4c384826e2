"""``ulmrec tui RUNS_DIR``: the terminal app (Textual is imported inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def tui_command(
    runs: Annotated[Path, typer.Argument(metavar="RUNS_DIR", help="Runs folder to show.")] = Path("runs"),
    keys: Annotated[Path | None, typer.Option(
        "--keys", help="TOML file remapping keys by binding id, e.g. `\"run.launch\" = \"ctrl+l\"` "
                       "(ids: `ulmrec tui --list-keys`).")] = None,
    list_keys: Annotated[bool, typer.Option("--list-keys", help="Print every binding id and its key, "
                                                                "then exit.")] = False,
) -> None:
    """Terminal app: runs, stages (launch/stop/resume), logs, results, the user index, the system."""
    from ulmrec_app.tui.keys import binding_table, read_keymap

    keymap = read_keymap(keys) if keys is not None else None
    if list_keys:   # as the app would bind them: with --keys, its keys
        for binding_id, key, description in binding_table():
            typer.echo(f"{binding_id:<20} {(keymap or {}).get(binding_id, key):<8} {description}")
        return
    from ulmrec_app.tui.app import UlmrecApp

    UlmrecApp(runs, keymap=keymap).run()
