"""A CLI option and the config field it fills declare the same choices, default and bounds.

The options are read from the Typer commands (``typer.main.get_command``), and each is paired with the field
of the same name of the config model it fills (:func:`_field_of`: ``align build`` -> ``PromptConfig`` /
``AlignConfig``, ``align train`` -> ``TrainSettings`` / ``LoraSettings`` for ``--lora-*``, plus the pairs of
:data:`EXTRA`), so a new option is checked without being listed. A choice option must declare its choices as
its type (the field's ``Literal`` alias: Typer offers and checks them, ``ulmrec run`` validates a config's
value against them) -- never a plain ``str`` with a hand check ``if x not in (...)`` in the command body;
its choices and default must be the field's; a numeric option's ``min``/``max`` must be the field's
``ge``/``le`` (a ``gt``/``lt``, which Typer cannot say, is left to the model, whose refusal is one line).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from support.cli import one_line_error, run_ulmrec

from ulmrec_align.cli import align_app as app
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.ranking.ranker import Method, RankRow
from ulmrec_align.tasks.schema import AlignConfig
from ulmrec_align.tuning.config import LoraSettings, TrainSettings

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]
#: Options paired with a field of another name or model than :func:`_field_of` finds.
EXTRA: dict[tuple[str, str], tuple[type[BaseModel], str]] = {
    ("rank", "answer"): (PromptConfig, "answer"),
    ("rank", "quantization"): (TrainSettings, "quantization"),
    ("rank", "split"): (RankRow, "split"),
}
#: Pairs whose defaults differ on purpose, with why.
OWN_DEFAULT = {
    ("build", "negatives"): "None: derived from --answer (retriever for relevance answers)",
    ("build", "tasks"): "None: the registered built-ins (the field has no default)",
    ("train", "gradient_checkpointing"): "auto | on | off spells the field's None | True | False",
    ("rank", "quantization"): "ranking defaults to none; tuning to auto (NF4 on CUDA)",
    ("rank", "answer"): "None: a tuned model ranks the way it was tuned",
    ("rank", "split"): "RankRow.split has no default",
    ("train", "retriever_prior"): "'0': the option is a string (a number or auto), the field's 0.0",
}
#: (command, field) of options that take a number or a word, so they are strings parsed in the command (as
#: ``rank --fuse-retriever``), not a choice type; their field's Literal holds only the word.
NUMBER_OR_WORD = {("train", "retriever_prior"): "β >= 0 or auto (tuning/cli.py: _prior_arg)"}


def _field_of(command: str, name: str) -> tuple[type[BaseModel], str] | None:
    """The config field an option fills: the one of the same name in the command's models."""
    if (command, name) in EXTRA:
        return EXTRA[(command, name)]
    models: dict[str, list[tuple[type[BaseModel], str]]] = {
        "build": [(PromptConfig, name), (AlignConfig, name)],
        "train": [(LoraSettings, name.removeprefix("lora_"))] if name.startswith("lora_")
        else [(TrainSettings, name)],
    }
    return next(((m, f) for m, f in models.get(command, []) if f in m.model_fields), None)


PAIRS = [(command, param.opts[0], *found) for command in ("build", "rank", "train")
         for param in COMMANDS[command].params if (found := _field_of(command, param.name)) is not None]


def _is_literal(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    return typing.get_origin(annotation) is typing.Literal or any(map(_is_literal, args))


CHOICES = [pair for pair in PAIRS if _is_literal(pair[2].model_fields[pair[3]].annotation)
           and (pair[0], pair[3]) not in NUMBER_OR_WORD]
BOUNDS = [pair for pair in PAIRS if pair[2].model_fields[pair[3]].annotation in (int, float, int | None,
                                                                                  float | None)]


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


def _hand_checked(command: str, name: str, bodies: list[ast.AST] | None = None) -> set[str] | None:
    """The constants of ``if <name> not in (...)`` / ``<name> in (...)`` in the command's body, or None."""
    found: list[set[str]] = []
    for node in (n for tree in bodies or _bodies(command) for n in ast.walk(tree)):
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
    """The choices the option declares as its type (an Enum/Literal annotation, or a click ``Choice``)."""
    param = _param(command, option)
    declared = getattr(getattr(param, "type", None), "choices", None)     # a click Choice
    if declared is None:                                                  # Typer's Enum/Literal annotation
        declared = getattr(getattr(param, "type_descriptor", None), "choices", None)
    assert declared is not None, f"align {command} {option}: a plain option, not a choice type"
    return {str(c.value) if isinstance(c, Enum) else str(c) for c in declared}


@pytest.mark.parametrize(("command", "option", "model", "field"), CHOICES,
                         ids=[f"{c} {o}" for c, o, _, _ in CHOICES])
def test_choices_match_the_config_literal(command: str, option: str, model: type[BaseModel],
                                          field: str) -> None:
    assert _cli_choices(command, option) == _literal(model, field), (
        f"align {command} {option} and {model.__name__}.{field} offer different choices")


@pytest.mark.parametrize(("command", "option", "model", "field"), PAIRS,
                         ids=[f"{c} {o}" for c, o, _, _ in PAIRS])
def test_defaults_match_the_config(command: str, option: str, model: type[BaseModel],
                                          field: str) -> None:
    """A CLI default is the config's (unless :data:`OWN_DEFAULT` says why not)."""
    param = _param(command, option)
    if (command, param.name) in OWN_DEFAULT:
        return
    default = param.default.value if isinstance(param.default, Enum) else param.default
    expected = model.model_fields[field].get_default(call_default_factory=True)
    if isinstance(expected, list) and isinstance(default, str):       # --lora-targets q_proj,v_proj
        expected = ",".join(expected)
    assert default == expected, (
        f"align {command} {option} defaults to {default!r}, {model.__name__}.{field} to {expected!r}")


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


@pytest.mark.parametrize("command", ["build", "rank", "train"])
def test_no_option_is_checked_by_hand(command: str) -> None:
    """A choice is the option's type, not a ``str`` the body compares with a tuple of its own."""
    bodies = _bodies(command)
    checked = {p.name: found for p in COMMANDS[command].params
               if (found := _hand_checked(command, p.name, bodies)) is not None}
    assert checked == {}, f"align {command}: options checked by hand: {checked}"


def test_options_without_a_config_field_keep_the_librarys_choices() -> None:
    """``--method`` is ``ranking.ranker.Method``; every config pair is found (the discovery is not empty)."""
    assert _cli_choices("rank", "--method") == set(typing.get_args(Method))
    found = {(c, o) for c, o, _, _ in PAIRS}
    assert {("build", "--answer"), ("build", "--negatives"), ("build", "--cold-share"), ("rank", "--answer"),
            ("rank", "--split"), ("train", "--loss"), ("train", "--lora-alpha"),
            ("train", "--epochs")} <= found
    assert len(CHOICES) >= 11
    assert len(BOUNDS) >= 20


@pytest.mark.parametrize(("command", "args", "line"), [
    ("train", ["--lr", "0"], "--lr: Input should be greater than 0 (got 0.0)"),
    ("train", ["--lora-alpha", "0"], "--lora-alpha: Input should be greater than 0 (got 0.0)"),
    ("train", ["--epochs", "0"], "--epochs: Input should be greater than 0 (got 0.0)"),
    ("train", ["--lora-dropout", "1"], "--lora-dropout: Input should be less than 1 (got 1.0)"),
    ("build", ["--cold-share", "1"], "--cold-share: Input should be less than 1 (got 1.0)"),
], ids=["lr", "lora-alpha", "epochs", "lora-dropout", "cold-share"])
def test_a_bound_left_to_the_config_is_refused_in_one_line(tmp_path: Path, command: str, args: list[str],
                                                           line: str) -> None:
    """An open bound (gt/lt) Typer cannot say: the model refuses it, in one line naming the option."""
    paths = (["--samples", tmp_path / "A", "--model", "smollm2"] if command == "train"
             else ["--data", tmp_path / "D"])
    done = run_ulmrec("align", command, *paths, "--out", tmp_path / "out", *args)
    assert one_line_error(done) == f"ulmrec: error: {line}"


def test_the_readers_see_a_drift() -> None:
    """The helpers themselves: a hand check is read from the body, a Literal unwrapped, bounds compared."""
    body = ast.parse("def f(x):\n    if x not in ('all', 'last'):\n        raise ValueError(x)\n")
    assert _hand_checked("build", "x", [body]) == {"all", "last"}
    assert _literal(AlignConfig, "negatives") == {"random", "retriever"}
    assert not _agree((0.0, False), (0, True))      # --lora-alpha min=0.0 against alpha gt=0
    assert not _agree((2, False), (3, False))
    assert not _agree((26, False), None)
    assert _agree(None, (0, True))


def _options(group: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every command of a group with its parameters: name, flags, type, choices, bounds, default, help."""
    def described(p: Any) -> tuple[Any, ...]:
        kind = getattr(p, "type_descriptor", None)
        return (p.name, tuple(p.opts), tuple(p.secondary_opts), repr(getattr(kind, "annotation", None)),
                tuple(map(str, getattr(kind, "choices", None) or ())), getattr(p, "min", None),
                getattr(p, "max", None), p.default, p.required, getattr(p, "help", None))

    return {name: [described(p) for p in command.params] for name, command in group.commands.items()}


def test_ulmrec_align_and_ulmrec_mount_the_same_align_group() -> None:
    """``ulmrec-align align …`` and ``ulmrec align …`` (the entry point ``ulmrec.cli``) are one tree."""
    from ulmrec_align.cli import build_app
    from ulmrec_app.main import build_app as build_ulmrec

    standalone = typer.main.get_command(build_app()).commands["align"]  # type: ignore[attr-defined]
    umbrella = typer.main.get_command(build_ulmrec()).commands["align"]  # type: ignore[attr-defined]
    assert list(umbrella.commands) == list(standalone.commands) == ["build", "rank", "inspect", "train"]
    assert _options(umbrella) == _options(standalone)
    assert _options(umbrella)["build"]
    assert _options(umbrella)["train"]
