"""Key bindings by id: every binding of the app and its screens has an id (``run.launch``), so that a
TOML file can remap it (``ulmrec tui --keys keys.toml``; Textual's keymap)."""

from __future__ import annotations

from pathlib import Path

from ulmrec_eval.runtime.errors import InputError


def binding_table() -> list[tuple[str, str, str]]:
    """``(id, key, description)`` of every binding of the app and its screens, sorted by id."""
    from textual.binding import Binding

    from ulmrec_app.tui.app import UlmrecApp
    from ulmrec_app.tui.screens.base import PollingScreen
    from ulmrec_app.tui.screens.prompt import ConfigPrompt
    from ulmrec_app.tui.screens.run import RunScreen
    from ulmrec_app.tui.screens.runs import RunsScreen

    rows = {}
    for owner in (UlmrecApp, PollingScreen, RunsScreen, RunScreen, ConfigPrompt):
        for binding in owner.BINDINGS:
            if isinstance(binding, Binding) and binding.id:
                rows[binding.id] = (binding.id, binding.key, binding.description)
    return sorted(rows.values())


def read_keymap(path: Path) -> dict[str, str]:
    """``{binding id: keys}`` from a TOML file; unknown ids and non-string keys are refused with the file."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("key map not found", path=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save the "
                         "key map as UTF-8", path=path) from None
    except IsADirectoryError:
        raise InputError("a folder, not a key map file", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", path=path) from None
    known = {row[0] for row in binding_table()}
    keymap: dict[str, str] = {}
    for binding_id, keys in data.items():
        if binding_id not in known:
            raise InputError(f"{binding_id!r} is not a binding id; known: {', '.join(sorted(known))}",
                             path=path)
        if not isinstance(keys, str) or not keys.strip():
            raise InputError(f"{binding_id}: keys must be a non-empty string such as \"ctrl+l\"", path=path)
        keymap[binding_id] = keys
    return keymap
