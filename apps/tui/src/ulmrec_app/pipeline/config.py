"""Run configs: a TOML (or YAML) file naming the run and, per stage, the options of that stage's command.

```toml
name = "demo"
stages = ["data", "users", "index", "retrieve", "align", "train", "rank", "eval"]   # default: all
[data.synthetic]          # `ulmrec data synthetic` options (or [data.download]; then [data.prepare])
users = 300
[index]                   # `ulmrec index build` options
codebook_size = 16
[align]                   # `ulmrec align build` options; index = "none" is the no-index baseline
```

``extends = "base.toml"`` (relative to this file) starts from another config and overrides its keys, so a
variant names only what differs. Errors are one line: ``<file>: <key>: <problem>; allowed: …``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_eval.runtime.errors import error_text

#: The stages' names, in order: each is declared in :data:`ulmrec_app.pipeline.stages.STAGE_LIST` and has its
#: options table in :class:`RunConfig` (a config is read before the stages are;
#: tests/tui/test_stage_registry.py keeps the three in step).
StageName = Literal["data", "users", "index", "retrieve", "align", "train", "rank", "eval"]
STAGES: tuple[StageName, ...] = get_args(StageName)
#: Sub-commands the data stage may run (at most one of synthetic/download, then prepare).
DATA_COMMANDS = ("synthetic", "download", "prepare")
CONFIG_SCHEMA_VERSION = 1


class ExperimentTable(BaseModel):
    """``[experiment]``: the variants and seeds ``ulmrec experiment ablate CONFIG`` runs when the command line
    names none (the command line wins)."""

    model_config = ConfigDict(extra="forbid")

    variants: list[str] | None = Field(default=None, description="Variant names (ulmrec_app.experiment).")
    seeds: list[int] | None = Field(default=None, description="Seeds (align and train).")


class RunConfig(BaseModel):
    """A validated run config; each stage table holds that stage's command options (checked in ``plan``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(default=CONFIG_SCHEMA_VERSION, description="Version of the config format.")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="Run name: the folder runs/<name>/ (letters, digits, . _ -).")
    description: str = Field(default="", description="A line shown by `ulmrec tui`.")
    stages: list[StageName] = Field(default_factory=lambda: list(STAGES),
                                    description="Stages this run has (a prefix such as data…retrieve works).")
    data: dict[Literal["synthetic", "download", "prepare"], dict[str, Any]] = Field(
        default_factory=dict, description="Options of `ulmrec data synthetic|download|prepare`.")
    users: dict[str, Any] = Field(default_factory=dict, description="Options of `ulmrec data users`.")
    index: dict[str, Any] = Field(default_factory=dict, description="Options of `ulmrec index build`.")
    retrieve: dict[str, Any] = Field(default_factory=dict, description="Options of `ulmrec retrieve train`.")
    align: dict[str, Any] = Field(default_factory=dict, description="Options of `ulmrec align build`.")
    train: dict[str, Any] = Field(default_factory=dict, description="Options of `ulmrec align train`.")
    rank: dict[str, Any] = Field(default_factory=dict, description="Options of `ulmrec align rank`.")
    eval: dict[str, Any] = Field(default_factory=dict, description="Options of `ulmrec eval metrics`.")
    experiment: ExperimentTable = Field(default_factory=lambda: ExperimentTable(),
                                        description="Defaults of `ulmrec experiment ablate` on this config.")
    source: str = Field(default="", exclude=True, description="The file it was read from.")
    base_dir: str = Field(default=".", exclude=True, description="Relative paths resolve here.")
    origins: dict[str, str] = Field(
        default_factory=dict, exclude=True,
        description="Dotted key ('data.prepare.path') -> folder of the file that set it: a relative path "
                    "resolves against the config that wrote it, not against one that extends that config.")

    def base_for(self, key: str) -> str:
        """Where a relative path given at the dotted ``key`` resolves: the folder of the file that set it."""
        return self.origins.get(key, self.base_dir)

    def settings(self, stage: str) -> dict[str, Any]:
        value: dict[str, Any] = getattr(self, stage)
        return value

    @property
    def uses_index(self) -> bool:
        """False for the no-index baseline (``align.index = "none"``)."""
        return str(self.align.get("index", "")).lower() != "none"


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PipelineError(f"{path}: config file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PipelineError(f"{path}:{line}: not UTF-8 (byte {raw[exc.start]:#04x}); save the config as "
                            "UTF-8") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml  # noqa: F401 - only to say what is missing
        except ImportError:
            raise PipelineError(f"{path}: YAML needs PyYAML (pip install pyyaml); or use TOML") from None
        data = _load_yaml(path, text)
    else:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PipelineError(_toml_error(path, str(exc))) from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a table of keys at the top level")
    return data


def _toml_error(path: Path, message: str) -> str:
    """``file:line: …`` of a TOML error (tomllib puts the place in parentheses at the end)."""
    import re

    found = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if found is None:
        return f"{path}: invalid TOML: {message}"
    what = message[: found.start()]
    if what.startswith(("Cannot overwrite a value", "Cannot declare")):
        what = f"a key or table given twice ({what})"
    return f"{path}:{found.group(1)}: invalid TOML: {what}"


def _load_yaml(path: Path, text: str) -> Any:
    """Parse YAML safely, refusing a repeated key; errors are ``file:line: …``."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise PipelineError(f"{path}:{line}: key {key!r} given twice (first on line {seen[key]})")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise PipelineError(f"{where}: invalid YAML: {problem}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def _leaf_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every value that is not a table (``data.prepare.path``), key names as written."""
    keys: list[str] = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys += _leaf_keys(value, dotted + ".") if isinstance(value, dict) else [dotted]
    return keys


def _resolve_extends(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged config and, per dotted key, the folder of the file that set it."""
    resolved = path.resolve()
    if resolved in seen:
        raise PipelineError(f"{path}: extends: circular ({' -> '.join(str(p) for p in (*seen, resolved))})")
    data = _read_file(path)
    parent = data.pop("extends", None)
    here = dict.fromkeys(_leaf_keys(data), str(resolved.parent))
    if parent is None:
        return data, here
    if not isinstance(parent, str):
        raise PipelineError(f"{path}: extends: expected a file name, got {parent!r}")
    base, origins = _resolve_extends(path.parent / parent, (*seen, resolved))
    return _merge(base, data), {**origins, **here}


def load_config(path: str | Path) -> RunConfig:
    """Read, merge (``extends``) and validate a run config; any problem is one :class:`PipelineError` line."""
    file = Path(path)
    data, origins = _resolve_extends(file)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise PipelineError(f"{file}: {_describe(exc)}") from None
    config.source = str(file)
    config.base_dir = str(file.resolve().parent)
    config.origins = origins
    if "synthetic" in config.data and "download" in config.data:
        raise PipelineError(f"{file}: data: give [data.synthetic] or [data.download], not both")
    return config


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "<top level>"
    if first["type"] == "extra_forbidden":
        top = [name for name in RunConfig.model_fields if name not in ("source", "base_dir")]
        return f"{loc}: unknown key; allowed: {', '.join([*top, 'extends'])}"
    if first["type"] in ("literal_error", "enum"):
        expected = first.get("ctx", {}).get("expected", "")
        return f"{loc}: {first['input']!r} is not allowed; allowed: {expected}"
    return f"{loc}: {error_text(first)}"
