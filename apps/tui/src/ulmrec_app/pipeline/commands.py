"""The options of each ``ulmrec …`` command, read from the command itself, so stage settings need no second
vocabulary: a config key is an option's name (``codebook_size`` or ``codebook-size`` for
``--codebook-size``), its value what the option takes, and :func:`to_argv` turns the settings back into the
command line the stage runs.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ulmrec_app.pipeline.errors import PipelineError


@dataclass(frozen=True)
class OptionSpec:
    """One parameter of a command: its Python name, flags, annotation and shape."""

    name: str
    flags: tuple[str, ...]           # ("--k-core",); empty for a positional argument
    off_flags: tuple[str, ...]       # ("--no-progress",) for a --x/--no-x pair
    annotation: Any
    is_flag: bool
    multiple: bool
    required: bool
    positional: bool
    default: Any = None              # the command's own default (JSON-able: Paths and enums as text)

    @property
    def is_path(self) -> bool:
        return self.annotation is Path or self.annotation == Path | None


@dataclass(frozen=True)
class CommandSpec:
    """The options of one ``ulmrec`` command (e.g. ``("data", "prepare")``)."""

    path: tuple[str, ...]
    options: dict[str, OptionSpec]
    #: ``resolve(options) -> {setting: value}``: what the command resolves from its options (library defaults
    #: included), when it declares it as ``<callback>.resolved_settings``; recorded with the stage.
    resolve: Any = None

    @property
    def title(self) -> str:
        return "ulmrec " + " ".join(self.path)

    def allowed(self, managed: frozenset[str] = frozenset()) -> list[str]:
        """Names a config may set (those the pipeline sets itself left out)."""
        return sorted(name for name in self.options if name not in managed)


@functools.lru_cache(maxsize=1)
def _root() -> Any:
    import typer.main

    from ulmrec_app.cli_tree import build_tree

    return typer.main.get_command(build_tree())


def command_spec(path: tuple[str, ...]) -> CommandSpec | None:
    """The spec of ``ulmrec <path>``, or None when that command is not installed."""
    command = _root()
    for part in path:
        commands = getattr(command, "commands", None)
        if not commands or part not in commands:
            return None
        command = commands[part]
    options: dict[str, OptionSpec] = {}
    for param in command.params:
        if not getattr(param, "expose_value", True) or param.name in (None, "help"):
            continue
        descriptor = getattr(param, "type_descriptor", None)
        annotation = getattr(descriptor, "annotation", Any) if descriptor is not None else Any
        positional = getattr(param, "param_type_name", "") == "argument"
        options[param.name] = OptionSpec(
            name=param.name,
            flags=() if positional else tuple(param.opts),
            off_flags=() if positional else tuple(getattr(param, "secondary_opts", ()) or ()),
            annotation=annotation,
            is_flag=bool(getattr(param, "is_flag", False)),
            multiple=bool(param.multiple),
            required=bool(param.required),
            positional=positional,
            default=_plain(getattr(param, "default", None)),
        )
    resolve = getattr(getattr(command, "callback", None), "resolved_settings", None)
    return CommandSpec(path=path, options=options, resolve=resolve)


def _plain(value: Any) -> Any:
    """A default as plain JSON data (so that it can be recorded and compared across versions)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if callable(value):
        return None
    return str(value)


def producing_package(command: str) -> tuple[str, str] | None:
    """``(distribution, version)`` of the package that registers ``ulmrec <command>`` (None: not found)."""
    from importlib.metadata import entry_points

    from ulmrec_app.cli_tree import ENTRY_POINT_GROUP

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == command and entry.dist is not None:
            return entry.dist.name, entry.dist.version
    return None


def normalise_key(key: str) -> str:
    """``codebook-size`` and ``codebook_size`` both name ``--codebook-size``."""
    return key.strip().lstrip("-").replace("-", "_")


def _settings_model(spec: CommandSpec, managed: frozenset[str]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, option in spec.options.items():
        if name in managed:
            continue
        annotation = option.annotation
        if annotation is Path:
            annotation = str
        fields[name] = (annotation | None if annotation is not Any else Any, None)
    model: type[BaseModel] = create_model(
        "Settings", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True), **fields)
    return model


def validate_settings(spec: CommandSpec, settings: dict[str, Any], *, where: str,
                      managed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Check ``settings`` against the command's options; returns them keyed by option name.

    A bad key or value raises :class:`PipelineError`: ``<where>.<key>: <problem>; allowed: …``.
    """
    normalised: dict[str, Any] = {}
    for key, value in settings.items():
        name = normalise_key(key)
        if name in managed:
            raise PipelineError(f"{where}.{key}: set by the pipeline, not by the config "
                                f"(allowed: {', '.join(spec.allowed(managed))})")
        normalised[name] = value
    model = _settings_model(spec, managed)
    try:
        checked = model.model_validate(normalised)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        if first["type"] == "extra_forbidden":
            raise PipelineError(f"{where}.{key}: not an option of `{spec.title}`; allowed: "
                                f"{', '.join(spec.allowed(managed))}") from None
        raise PipelineError(f"{where}.{key}: {first['msg']} (option {_flag(spec, key)} of "
                            f"`{spec.title}`)") from None
    return {k: v for k, v in checked.model_dump().items() if k in normalised}


def _flag(spec: CommandSpec, name: str) -> str:
    option = spec.options.get(name)
    if option is None or option.positional:
        return name.upper()
    return option.flags[0]


def _text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def to_argv(spec: CommandSpec, values: dict[str, Any]) -> list[str]:
    """``["ulmrec", *path, …]`` with positionals first (in the command's order) and one flag per option."""
    argv = ["ulmrec", *spec.path]
    for name, option in spec.options.items():
        if option.positional and values.get(name) is not None:
            argv.append(_text(values[name]))
    for name, option in spec.options.items():
        value = values.get(name)
        if option.positional or value is None:
            continue
        if option.is_flag:
            if value:
                argv.append(option.flags[0])
            elif option.off_flags:
                argv.append(option.off_flags[0])
            continue
        for item in value if option.multiple and isinstance(value, (list, tuple)) else [value]:
            argv.extend([option.flags[0], _text(item)])
    return argv


def require(path: tuple[str, ...]) -> CommandSpec:
    """:func:`command_spec`, or a :class:`PipelineError` saying the command is not installed."""
    spec = command_spec(path)
    if spec is None:
        raise PipelineError(f"`ulmrec {' '.join(path)}` is not installed (install the package that provides "
                            f"it, or leave its stage out of `stages`)")
    return spec
