"""The options of each ``ulmrec …`` command, read from the command itself, so stage settings need no second
vocabulary: a config key is an option's name (``codebook_size`` or ``codebook-size`` for
``--codebook-size``), its value what the option takes, and :func:`to_argv` turns the settings back into the
command line the stage runs.
"""

from __future__ import annotations

import enum
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_eval.runtime.errors import error_text


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
    minimum: float | None = None     # the option's declared range (typer ``min``/``max``), None: open
    maximum: float | None = None
    open_bounds: tuple[bool, bool] = (False, False)   # (min_open, max_open)

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
            minimum=_bound(param, "min"),
            maximum=_bound(param, "max"),
            open_bounds=_open_bounds(param),
        )
    resolve = getattr(getattr(command, "callback", None), "resolved_settings", None)
    return CommandSpec(path=path, options=options, resolve=resolve)


def _bound(param: Any, which: str) -> float | None:
    """The option's declared ``min`` or ``max`` (typer keeps it on the option, click on its type)."""
    value = getattr(param, which, None)
    if value is None:
        value = getattr(getattr(param, "type", None), which, None)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _open_bounds(param: Any) -> tuple[bool, bool]:
    info = getattr(getattr(param, "type_descriptor", None), "parameter_info", None) or getattr(param, "type",
                                                                                                None)
    return bool(getattr(info, "min_open", False)), bool(getattr(info, "max_open", False))


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


#: Options that a command checks in its body against a field of one of its library models (a Literal or a
#: bound), as ``{command: {option: "module:Model.field"}}``: the stage checks them when it is planned, so that
#: ``ulmrec run --dry-run`` and ``experiment ablate --dry-run`` refuse what the command would refuse minutes
#: later. Ranges declared on an option itself (``min=1``) are read from the option; an open bound
#: (``gt``/``lt``, which Typer cannot declare) lives only in the model, so every option with one is listed.
MODEL_BOUNDS: dict[tuple[str, ...], dict[str, str]] = {
    ("align", "build"): {"answer": "ulmrec_align.prompts.config:PromptConfig.answer",
                         "prefixes": "ulmrec_align.tasks.schema:AlignConfig.prefixes",
                         "negatives": "ulmrec_align.tasks.schema:AlignConfig.negatives",
                         "valid_order": "ulmrec_align.tasks.schema:AlignConfig.valid_order",
                         "index_tokens": "ulmrec_align.tasks.schema:AlignConfig.index_tokens",
                         "cold_share": "ulmrec_align.tasks.schema:AlignConfig.cold_share"},
    ("align", "rank"): {"answer": "ulmrec_align.prompts.config:PromptConfig.answer",
                        "quantization": "ulmrec_align.tuning.config:TrainSettings.quantization"},
    ("align", "train"): {"scheduler": "ulmrec_align.tuning.config:TrainSettings.scheduler",
                         "loss": "ulmrec_align.tuning.config:TrainSettings.loss",
                         "lr": "ulmrec_align.tuning.config:TrainSettings.lr",
                         "epochs": "ulmrec_align.tuning.config:TrainSettings.epochs",
                         "max_minutes": "ulmrec_align.tuning.config:TrainSettings.max_minutes",
                         "lora_alpha": "ulmrec_align.tuning.config:LoraSettings.alpha",
                         "lora_dropout": "ulmrec_align.tuning.config:LoraSettings.dropout",
                         "quantization": "ulmrec_align.tuning.config:TrainSettings.quantization"},
}


def _model_field(reference: str) -> Any:
    """A ``TypeAdapter`` of ``module:Model.field`` (its annotation and constraints); None if not there."""
    import importlib
    from typing import Annotated

    from pydantic import TypeAdapter

    module, _, attribute = reference.partition(":")
    model_name, _, field_name = attribute.partition(".")
    try:
        model = getattr(importlib.import_module(module), model_name)
        info = model.model_fields[field_name]
    except (ImportError, AttributeError, KeyError):
        return None
    annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotation)


def _base_types(annotation: Any) -> set[Any]:
    import typing

    args = typing.get_args(annotation)
    return {a for a in args if a is not type(None)} if args else {annotation}


def _check_values(spec: CommandSpec, values: dict[str, Any], where: str) -> None:
    """What the command itself would refuse in a value of the right type: a number outside the option's
    declared range, a value its library model does not allow (:data:`MODEL_BOUNDS`), a float that is not
    finite."""
    import math

    bounds = MODEL_BOUNDS.get(spec.path, {})
    for name, value in values.items():
        option = spec.options[name]
        flag = _flag(spec, name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, float) and not math.isfinite(item):
                raise PipelineError(f"{where}.{name}: {item!r} is not a finite number (option {flag} of "
                                    f"`{spec.title}`)")
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                low, high = option.minimum, option.maximum
                below = low is not None and (item <= low if option.open_bounds[0] else item < low)
                above = high is not None and (item >= high if option.open_bounds[1] else item > high)
                if below or above:
                    shown = " and ".join(part for part in (
                        None if low is None else f"{'>' if option.open_bounds[0] else '>='} {low}",
                        None if high is None else f"{'<' if option.open_bounds[1] else '<='} {high}") if part)
                    raise PipelineError(f"{where}.{name}: {item!r} is out of range; option {flag} of "
                                        f"`{spec.title}` takes values {shown}")
        if name in bounds and value is not None:
            adapter = _model_field(bounds[name])
            if adapter is None:
                continue
            try:
                adapter.validate_python(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise PipelineError(f"{where}.{name}: {value!r}: {error_text(first)} (option {flag} of "
                                    f"`{spec.title}`)") from None


def _coerce(spec: CommandSpec, settings: dict[str, Any], where: str) -> dict[str, Any]:
    """Config values as the command line would take them: a number for a text option (``fuse_retriever =
    0.5``) becomes its text; a true/false for a number option is refused (it would become 1 or 0), and so is
    anything but true/false for a switch (``"yes"`` or ``1`` would pass as true)."""
    out = dict(settings)
    for name, value in settings.items():
        option = spec.options.get(name)
        if option is not None and option.is_flag and value is not None and not isinstance(value, bool):
            raise PipelineError(f"{where}.{name}: {json.dumps(value)} is not true or false (switch "
                                f"{_flag(spec, name)} of `{spec.title}`)")
        if option is None or option.is_flag:
            continue
        types = _base_types(option.annotation)
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in items) and types & {int, float} and bool not in types:
            raise PipelineError(f"{where}.{name}: {json.dumps(value)} is not a number (option "
                                f"{_flag(spec, name)} of "
                                f"`{spec.title}` takes a number; true/false would pass as 1/0)")
        if types == {str} and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = repr(value) if isinstance(value, float) else str(value)
        if option.multiple and isinstance(value, str):   # one value of a repeatable option
            out[name] = [value]
    return out


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
    normalised = _coerce(spec, normalised, where)
    model = _settings_model(spec, managed)
    try:
        checked = model.model_validate(normalised)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        if first["type"] == "extra_forbidden":
            raise PipelineError(f"{where}.{key}: not an option of `{spec.title}`; allowed: "
                                f"{', '.join(spec.allowed(managed))}") from None
        raise PipelineError(f"{where}.{key}: {first.get('input')!r}: {first['msg']} (option "
                            f"{_flag(spec, key)} of `{spec.title}`)") from None
    values = {k: v for k, v in checked.model_dump().items() if k in normalised}
    _check_values(spec, values, where)
    return values


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
