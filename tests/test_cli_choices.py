"""A CLI option and the config field it fills declare the same choices, default and bounds.

The options are read from the Typer commands (``typer.main.get_command``); an option's choices are its
parameter type's (an Enum/Literal annotation or a click ``Choice``) or, for a plain ``str`` option, the
tuple of the command body's hand check ``if x not in (...)``. Each pair below must agree with the pydantic
field's ``Literal`` (and default), and each numeric option's ``min``/``max`` with the field's
``ge``/``gt``/``le``/``lt`` -- so a choice added to one side and not the other fails here.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from enum import Enum
from typing import Any

import pytest
import typer
from pydantic import BaseModel

from ulmrec_align.align_cli import app
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.tasks.schema import AlignConfig
from ulmrec_align.tuning.config import LoraSettings, TrainSettings

# (command, option, config model, field)
CHOICES = [
    ("build", "--answer", PromptConfig, "answer"),
    ("build", "--prefixes", AlignConfig, "prefixes"),
    ("build", "--negatives", AlignConfig, "negatives"),
    ("build", "--index-tokens", AlignConfig, "index_tokens"),
    ("build", "--valid-order", AlignConfig, "valid_order"),
    ("rank", "--answer", PromptConfig, "answer"),
    ("train", "--loss", TrainSettings, "loss"),
    ("train", "--scheduler", TrainSettings, "scheduler"),
]
BOUNDS = [
    ("build", "--n-candidates", PromptConfig, "n_candidates"),
    ("build", "--history-items", PromptConfig, "history_items"),
    ("build", "--title-tokens", PromptConfig, "title_tokens"),
    ("build", "--max-prompt-tokens", PromptConfig, "max_prompt_tokens"),
    ("build", "--text-tokens", PromptConfig, "text_tokens"),
    ("train", "--lora-alpha", LoraSettings, "alpha"),
    ("train", "--lora-r", LoraSettings, "r"),
    ("train", "--lr", TrainSettings, "lr"),
    ("train", "--batch-size", TrainSettings, "batch_size"),
    ("train", "--grad-accum", TrainSettings, "grad_accum"),
    ("train", "--save-steps", TrainSettings, "save_steps"),
    ("train", "--max-length", TrainSettings, "max_length"),
]

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _param(command: str, option: str) -> Any:
    found = [p for p in COMMANDS[command].params if option in p.opts]
    assert found, f"align {command} has no {option}"
    return found[0]


def _function(command: str) -> Any:
    """The Python function behind ``align <command>`` (as registered, before Typer wraps it)."""
    for info in app.registered_commands:
        if info.name == command or (info.name is None and info.callback.__name__ == command):
            return info.callback
    raise AssertionError(f"align {command} is not registered")


def _literal(model: type[BaseModel], field: str) -> set[str]:
    """The values of ``model.field``'s Literal (``X | None`` unwrapped)."""
    values: set[str] = set()
    todo = [model.model_fields[field].annotation]
    while todo:
        annotation = todo.pop()
        if typing.get_origin(annotation) is typing.Literal:
            values.update(str(v) for v in typing.get_args(annotation))
        else:
            todo.extend(a for a in typing.get_args(annotation) if a is not type(None))
    assert values, f"{model.__name__}.{field} is not a Literal"
    return values


def _bodies(command: str) -> list[ast.AST]:
    """The command function's syntax tree and those of its module's functions it calls (``build`` ->
    ``_rank``-style helpers that take the options as keywords)."""
    function = _function(command)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    module = vars(inspect.getmodule(function))
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    helpers = [module[c] for c in sorted(called) if inspect.isfunction(module.get(c))
               and module[c].__module__ == function.__module__]
    return [tree, *(ast.parse(textwrap.dedent(inspect.getsource(h))) for h in helpers)]


def _hand_checked(command: str, name: str) -> set[str] | None:
    """The constants of ``if <name> not in (...)`` / ``<name> in (...)`` in the command's body, or None."""
    found: list[set[str]] = []
    for node in (n for tree in _bodies(command) for n in ast.walk(tree)):
        if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == name
                and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn))
                and isinstance(node.comparators[0], (ast.Tuple, ast.List, ast.Set))):
            elements = node.comparators[0].elts
            if all(isinstance(e, ast.Constant) for e in elements):
                found.append({str(e.value) for e in elements if e.value is not None})  # type: ignore[attr-defined]
    if not found:
        return None
    assert all(f == found[0] for f in found), f"align {command}: {name} is checked against {found}"
    return found[0]


def _cli_choices(command: str, option: str) -> set[str]:
    param = _param(command, option)
    declared = getattr(getattr(param, "type", None), "choices", None)     # a click Choice
    if declared is None:                                                  # Typer's Enum/Literal annotation
        declared = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if declared is not None:
        return {str(c.value) if isinstance(c, Enum) else str(c) for c in declared}
    checked = _hand_checked(command, param.name)
    assert checked is not None, f"align {command} {option}: neither a choice type nor a hand check"
    return checked


@pytest.mark.parametrize(("command", "option", "model", "field"), CHOICES,
                         ids=[f"{c} {o}" for c, o, _, _ in CHOICES])
def test_choices_match_the_config_literal(command: str, option: str, model: type[BaseModel],
                                          field: str) -> None:
    assert _cli_choices(command, option) == _literal(model, field), (
        f"align {command} {option} and {model.__name__}.{field} offer different choices")


@pytest.mark.parametrize(("command", "option", "model", "field"), CHOICES,
                         ids=[f"{c} {o}" for c, o, _, _ in CHOICES])
def test_choice_defaults_match_the_config(command: str, option: str, model: type[BaseModel],
                                          field: str) -> None:
    """A CLI default is the config's (None: the command derives it, e.g. --negatives from --answer)."""
    default = _param(command, option).default
    if default is None:
        return
    default = default.value if isinstance(default, Enum) else default
    assert default == model.model_fields[field].default, (
        f"align {command} {option} defaults to {default!r}, {model.__name__}.{field} to "
        f"{model.model_fields[field].default!r}")


Bound = tuple[Any, bool] | None


def _model_bounds(model: type[BaseModel], field: str) -> tuple[Bound, Bound]:
    """``((lower, open), (upper, open))`` of the field's ge/gt/le/lt; None where unbounded."""
    low = high = None
    for item in model.model_fields[field].metadata:
        if getattr(item, "ge", None) is not None:
            low = (item.ge, False)
        if getattr(item, "gt", None) is not None:
            low = (item.gt, True)
        if getattr(item, "le", None) is not None:
            high = (item.le, False)
        if getattr(item, "lt", None) is not None:
            high = (item.lt, True)
    return low, high


def _cli_bounds(command: str, option: str) -> tuple[Bound, Bound]:
    """The option's min/max (Typer's, inclusive; or a click IntRange/FloatRange with its open ends)."""
    param = _param(command, option)
    kind = getattr(param, "type", None)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    low_open = high_open = False
    if low is None and high is None and hasattr(kind, "min"):
        low, high = kind.min, kind.max
        low_open, high_open = getattr(kind, "min_open", False), getattr(kind, "max_open", False)
    return (None if low is None else (low, low_open)), (None if high is None else (high, high_open))


def _agree(cli: Bound, config: Bound) -> bool:
    """An inclusive config bound must be the CLI's; an open one (gt/lt) the CLI's open one, or left to the
    config (Typer's min/max are inclusive only: the config refuses the bound itself, in one line)."""
    if config is None or not config[1]:
        return cli == config
    return cli is None or cli == config


@pytest.mark.parametrize(("command", "option", "model", "field"), BOUNDS,
                         ids=[f"{c} {o}" for c, o, _, _ in BOUNDS])
def test_bounds_match_the_config_field(command: str, option: str, model: type[BaseModel], field: str) -> None:
    (cli_low, cli_high), (low, high) = _cli_bounds(command, option), _model_bounds(model, field)
    assert _agree(cli_low, low), (
        f"align {command} {option}: lower bound {cli_low} vs {model.__name__}.{field} {low}")
    assert _agree(cli_high, high), (
        f"align {command} {option}: upper bound {cli_high} vs {model.__name__}.{field} {high}")


def test_the_readers_see_a_drift() -> None:
    """The helpers themselves: a hand check is read from the body, a Literal unwrapped, bounds compared."""
    assert _hand_checked("build", "prefixes") == {"all", "last"}
    assert _literal(AlignConfig, "negatives") == {"random", "retriever"}
    assert not _agree((0.0, False), (0, True))      # --lora-alpha min=0.0 against alpha gt=0
    assert not _agree((2, False), (3, False))
    assert not _agree((26, False), None)
    assert _agree(None, (0, True))
