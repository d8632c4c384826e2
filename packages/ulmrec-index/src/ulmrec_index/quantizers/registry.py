"""The quantizer registry: ``kind`` → (config class, factory), fed by built-ins and by entry points.

Built-ins (``rqvae``, ``rqkmeans``, ``faiss``) register themselves when their module is imported; the registry
imports them on first use. Third-party quantizers are discovered lazily from the entry-point group
``ulmrec.quantizers``: the entry point's name is the kind and its value an object with attributes
``config_class`` (a :class:`QuantizerConfig` subclass whose ``kind`` is ``Literal["<name>"]``) and ``factory``
(``config -> Quantizer``) — a :class:`QuantizerSpec` is the simplest such object::

    [project.entry-points."ulmrec.quantizers"]
    myquant = "my_package.quant:SPEC"  # SPEC = QuantizerSpec("myquant", MyConfig, MyQuantizer)

Or at runtime, without packaging: ``register_quantizer("myquant", MyConfig, factory)`` (also a decorator).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter

from ulmrec_index.quantizers.base import Quantizer, QuantizerConfig
from ulmrec_index.quantizers.errors import QuantizerError

ENTRY_POINT_GROUP = "ulmrec.quantizers"
DEFAULT_KIND = "rqvae"
_BUILTIN_MODULES = (
    "ulmrec_index.quantizers.rqvae",
    "ulmrec_index.quantizers.rqkmeans",
    "ulmrec_index.quantizers.faiss_rq",
)

Factory = Callable[[Any], Quantizer]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class QuantizerSpec:
    """One registry entry: the lowercase ``kind``, its config class and ``factory(config) -> Quantizer``."""

    kind: str
    config_class: type[QuantizerConfig]
    factory: Factory


_lock = threading.RLock()
_registry: dict[str, QuantizerSpec] = {}
_builtins_loaded = False
_entry_points_loaded = False


def _check_kind(kind: str, config_cls: type[QuantizerConfig]) -> None:
    if not kind or kind != kind.lower() or not kind.replace("_", "").replace("-", "").isalnum():
        raise QuantizerError(f"quantizer kind must be lowercase letters/digits/_/-, got {kind!r}")
    if not (isinstance(config_cls, type) and issubclass(config_cls, QuantizerConfig)):
        raise QuantizerError(f"config class for {kind!r} must subclass QuantizerConfig, got {config_cls!r}")
    default = config_cls.model_fields["kind"].default
    if default != kind:
        raise QuantizerError(
            f"{config_cls.__name__}.kind must default to {kind!r} (use kind: Literal[{kind!r}] = {kind!r}),"
            f" got {default!r}"
        )


@overload
def register_quantizer(kind: str, config_cls: type[QuantizerConfig], factory: None = None, *,
                       replace: bool = False) -> Callable[[F], F]: ...
@overload
def register_quantizer(kind: str, config_cls: type[QuantizerConfig], factory: Factory, *,
                       replace: bool = False) -> Factory: ...
def register_quantizer(kind: str, config_cls: type[QuantizerConfig], factory: Factory | None = None, *,
                       replace: bool = False) -> Any:
    """Register ``factory(config) -> Quantizer`` for ``kind``; without ``factory``, acts as a decorator.

    Registering a kind again with the same config class and factory is a no-op; a different one raises
    :class:`QuantizerError` unless ``replace``. A class works as a factory when its constructor takes
    ``config=`` by keyword (``MyQuantizer(config=cfg)``).
    """
    if factory is None:
        def decorator(obj: F) -> F:
            register_quantizer(kind, config_cls, obj, replace=replace)
            return obj

        return decorator
    _check_kind(kind, config_cls)
    spec = QuantizerSpec(kind, config_cls, factory)
    with _lock:
        old = _registry.get(kind)
        if old is not None and old != spec and not replace:
            raise QuantizerError(f"quantizer kind {kind!r} is already registered (by {old.config_class!r}); "
                                 "pass replace=True to override it")
        _registry[kind] = spec
    return factory


def unregister_quantizer(kind: str) -> None:
    """Remove ``kind`` (for tests that register temporary quantizers)."""
    with _lock:
        _registry.pop(kind, None)


def _load_builtins() -> None:
    global _builtins_loaded
    with _lock:
        if _builtins_loaded:
            return
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def _spec_from_entry_point(ep: importlib.metadata.EntryPoint) -> QuantizerSpec:
    obj = ep.load()
    if isinstance(obj, QuantizerSpec):
        return obj if obj.kind == ep.name else QuantizerSpec(ep.name, obj.config_class, obj.factory)
    config_cls = getattr(obj, "config_class", None)
    factory = getattr(obj, "factory", None)
    if config_cls is None or factory is None:
        raise QuantizerError(f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r} must "
                             "name an object with 'config_class' and 'factory' attributes (a QuantizerSpec)")
    return QuantizerSpec(ep.name, config_cls, factory)


def load_entry_points(*, reload: bool = False) -> None:
    """Import and register every quantizer of the ``ulmrec.quantizers`` entry-point group (once).

    A broken or conflicting third-party entry point is skipped with a warning, so it cannot break the
    built-ins; a kind already registered in-process wins over an entry point of the same name.
    """
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded and not reload:
            return
        _entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _registry:
                continue
            try:
                spec = _spec_from_entry_point(ep)
                register_quantizer(spec.kind, spec.config_class, spec.factory)
            except Exception as exc:  # a third-party plugin must not break the registry
                warnings.warn(f"skipping quantizer entry point {ep.name!r} ({ep.value}): {exc}", stacklevel=2)


def _ensure_loaded() -> None:
    _load_builtins()
    load_entry_points()


def available_quantizers() -> list[str]:
    """Sorted kinds of every built-in and discovered quantizer."""
    _ensure_loaded()
    with _lock:
        return sorted(_registry)


def get_quantizer_spec(kind: str) -> QuantizerSpec:
    """The registry entry of ``kind``; an unknown kind raises :class:`QuantizerError` naming known ones."""
    _load_builtins()
    with _lock:
        spec = _registry.get(kind)
    if spec is None:
        load_entry_points(reload=True)  # a plugin installed after the first lookup
        with _lock:
            spec = _registry.get(kind)
    if spec is None:
        known = ", ".join(available_quantizers())
        raise QuantizerError(f"unknown quantizer kind {kind!r}; available: {known}")
    return spec


def get_quantizer_config_class(kind: str) -> type[QuantizerConfig]:
    """The pydantic config class registered for ``kind``."""
    return get_quantizer_spec(kind).config_class


def parse_quantizer_config(data: QuantizerConfig | Mapping[str, Any] | None = None,
                           **overrides: Any) -> QuantizerConfig:
    """A validated config from a dict (dispatched on its ``kind``, default ``rqvae``) or a config instance.

    ``overrides`` replace fields (e.g. ``levels=4``); pydantic errors name the bad field.
    """
    if isinstance(data, QuantizerConfig):
        if not overrides:
            return data
        data = data.model_dump()
    raw: dict[str, Any] = dict(data or {})
    raw.update(overrides)
    kind = raw.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str):
        raise QuantizerError(f"quantizer 'kind' must be a string, got {kind!r}")
    raw["kind"] = kind
    return get_quantizer_config_class(kind).model_validate(raw)


def quantizer_config_adapter() -> TypeAdapter[Any]:
    """A pydantic ``TypeAdapter`` over the union of every registered config, discriminated by ``kind``.

    Useful to embed a quantizer config in another model's JSON schema; :func:`parse_quantizer_config` is the
    simpler way to parse one dict.
    """
    from typing import Annotated, Union

    from pydantic import Field

    kinds = available_quantizers()
    classes = tuple(get_quantizer_config_class(k) for k in kinds)
    if len(classes) == 1:
        return TypeAdapter(classes[0])
    union = Union[classes]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="kind")])


def create_quantizer(config: QuantizerConfig | Mapping[str, Any] | None = None,
                     **overrides: Any) -> Quantizer:
    """An unfitted quantizer built by the factory registered for ``config.kind``.

    ``config`` may be a config instance or a dict (parsed by :func:`parse_quantizer_config`).
    """
    cfg = parse_quantizer_config(config, **overrides)
    spec = get_quantizer_spec(cfg.kind)
    if not isinstance(cfg, spec.config_class):
        cfg = spec.config_class.model_validate(cfg.model_dump())
    return spec.factory(cfg)
