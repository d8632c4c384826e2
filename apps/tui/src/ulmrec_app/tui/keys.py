"""Key bindings by id: every binding of the app and its screens has an id (``run.launch``), so that a
TOML file can remap it (``ulmrec tui --keys keys.toml``; Textual's keymap)."""

from __future__ import annotations

from pathlib import Path

from ulmrec_eval.runtime.errors import InputError


def binding_table() -> list[tuple[str, str, str]]:
    """``(id, key, description)`` of every binding of the app and its screens (those of
    :data:`ulmrec_app.tui.screens.registry.SCREENS` included), sorted by id."""
    from textual.binding import Binding
    from textual.dom import DOMNode

    from ulmrec_app.tui.app import UlmrecApp
    from ulmrec_app.tui.screens.base import PollingScreen
    from ulmrec_app.tui.screens.prompt import ConfigPrompt
    from ulmrec_app.tui.screens.registry import SCREENS
    from ulmrec_app.tui.screens.run import RunScreen
    from ulmrec_app.tui.screens.runs import RunsScreen

    owners: list[type[DOMNode]] = [UlmrecApp, PollingScreen, RunsScreen, RunScreen, ConfigPrompt]
    rows = {}
    for owner in owners + [e.load() for e in SCREENS]:
        for binding in owner.BINDINGS:
            if isinstance(binding, Binding) and binding.id:
                rows[binding.id] = (binding.id, binding.key, binding.description)
    return sorted(rows.values())


#: Modifiers a key may carry (``ctrl+shift+l``).
MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")


def _binding_groups() -> dict[str, set[str]]:
    """``{screen: binding ids active on it}``: the app's bindings and those of the screen and its bases
    (the registered screens after the others)."""
    from textual.binding import Binding

    from ulmrec_app.tui.app import UlmrecApp
    from ulmrec_app.tui.screens.base import PollingScreen
    from ulmrec_app.tui.screens.prompt import ConfigPrompt
    from ulmrec_app.tui.screens.registry import SCREENS
    from ulmrec_app.tui.screens.run import RunScreen
    from ulmrec_app.tui.screens.runs import RunsScreen

    def ids(owner: type) -> set[str]:
        return {b.id for cls in owner.__mro__ for b in getattr(cls, "BINDINGS", ())
                if isinstance(b, Binding) and b.id}

    app = ids(UlmrecApp)
    screens: list[tuple[str, type]] = [("runs", RunsScreen), ("run", RunScreen), ("other", PollingScreen),
                                       ("new-run", ConfigPrompt), *((e.name, e.load()) for e in SCREENS)]
    return {"the app": app, **{f"the {name} screen": app | ids(screen) for name, screen in screens}}


def key_problem(keys: str) -> str | None:
    """Why ``keys`` (``"ctrl+l"``, ``"f5,space"``) names no key Textual knows; None when each does."""
    from textual.keys import KEY_ALIASES, KEY_NAME_REPLACEMENTS, Keys, key_to_character

    names = {k.value.rsplit("+", 1)[-1] for k in Keys} | set(KEY_ALIASES) | set(KEY_NAME_REPLACEMENTS) \
        | set(KEY_NAME_REPLACEMENTS.values())
    for key in keys.split(","):
        *modifiers, name = key.strip().split("+") if key.strip() not in ("+", ",") else [key.strip()]
        bad = [m for m in modifiers if m not in MODIFIERS]
        if bad:
            return f"{key.strip()!r}: {bad[0]!r} is not a modifier ({', '.join(MODIFIERS)})"
        if not name or not (len(name) == 1 or name in names or key_to_character(name) is not None):
            return f"{key.strip()!r}: {name!r} is not a key name (e.g. a, f5, space, enter, escape, up)"
    return None


def _clashes(keymap: dict[str, str], defaults: dict[str, str]) -> str | None:
    """The first pair of bindings that would answer the same key on one screen after ``keymap``."""
    keys = {**defaults, **keymap}
    for screen, ids in _binding_groups().items():
        seen: dict[str, str] = {}
        for binding_id in sorted(ids, key=lambda b: (b not in keymap, b)):
            for key in (k.strip() for k in keys[binding_id].split(",")):
                other = seen.setdefault(key, binding_id)
                if other != binding_id and (other in keymap or binding_id in keymap):
                    return f"{other} and {binding_id} would both be {key!r} on {screen}"
    return None


def read_keymap(path: Path) -> dict[str, str]:
    """``{binding id: keys}`` from a TOML file; unknown ids, non-string or unknown keys and two bindings of
    one screen on the same key are refused with the file."""
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
    defaults = {row[0]: row[1] for row in binding_table()}
    known = set(defaults)
    keymap: dict[str, str] = {}
    for binding_id, keys in data.items():
        if binding_id not in known:
            raise InputError(f"{binding_id!r} is not a binding id; known: {', '.join(sorted(known))}",
                             path=path)
        if not isinstance(keys, str) or not keys.strip():
            raise InputError(f"{binding_id}: keys must be a non-empty string such as \"ctrl+l\"", path=path)
        problem = key_problem(keys)
        if problem is not None:
            raise InputError(f"{binding_id}: {problem}", path=path)
        keymap[binding_id] = keys
    clash = _clashes(keymap, defaults)
    if clash is not None:
        raise InputError(f"{clash}; give one of them another key", path=path)
    return keymap
