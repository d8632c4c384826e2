"""Nothing is loaded with pickle: a static check over every Python file under packages/ and apps/.

Refused (by the AST, so comments and strings do not count):

* importing ``pickle``, ``cPickle``, ``_pickle``, ``dill``, ``cloudpickle``, ``shelve`` or ``joblib``;
* calling ``torch.load`` without ``weights_only=True`` (a literal ``True``);
* any call with ``allow_pickle=True`` (``numpy.load`` and friends);
* ``read_pickle`` / ``to_pickle`` (pandas) and ``torch.serialization.load``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BANNED_MODULES = frozenset({"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "joblib"})
BANNED_ATTRIBUTES = frozenset({"read_pickle", "to_pickle"})


def _dotted(node: ast.AST) -> str:
    """``torch.serialization.load`` for the matching Attribute/Name chain, else ''."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def pickle_uses(source: str, name: str = "<source>") -> list[str]:
    """``file:line: what`` for every pickle use in ``source``."""
    found: list[str] = []
    tree = ast.parse(source, filename=name)
    torch_load_names = {"torch.load", "torch.serialization.load"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    found.append(f"{name}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in BANNED_MODULES:
                found.append(f"{name}:{node.lineno}: from {node.module} import …")
            if node.module in ("torch", "torch.serialization"):
                for alias in node.names:
                    if alias.name == "load":
                        torch_load_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Call):
            called = _dotted(node.func)
            keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg is not None}
            if called in torch_load_names and not _is_true(keywords.get("weights_only", ast.Constant(None))):
                found.append(f"{name}:{node.lineno}: {called}() without weights_only=True")
            if "allow_pickle" in keywords and not (
                isinstance(keywords["allow_pickle"], ast.Constant) and keywords["allow_pickle"].value is False
            ):
                found.append(f"{name}:{node.lineno}: allow_pickle=… (only a literal False is allowed)")
            if isinstance(node.func, ast.Attribute) and node.func.attr in BANNED_ATTRIBUTES:
                found.append(f"{name}:{node.lineno}: {node.func.attr}()")
    return found


def _sources() -> list[Path]:
    files = [p for base in ("packages", "apps") for p in (ROOT / base).rglob("*.py")]
    return sorted(p for p in files if not any(part.startswith(".") or part == "build" for part in p.parts))


def test_the_tree_has_sources() -> None:
    assert len(_sources()) > 50


def test_no_pickle_anywhere_in_packages_and_apps() -> None:
    problems = [hit for path in _sources()
                for hit in pickle_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert problems == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import pickle", "import pickle"),
        ("import pickle as p", "import pickle"),
        ("from pickle import loads", "from pickle import"),
        ("import dill.settings", "import dill.settings"),
        ("import torch\ntorch.load('x')", "torch.load() without weights_only=True"),
        ("import torch\ntorch.load('x', weights_only=False)", "without weights_only=True"),
        ("import torch\nflag = True\ntorch.load('x', weights_only=flag)", "without weights_only=True"),
        ("from torch import load\nload('x')", "load() without weights_only=True"),
        ("from torch import load as tl\ntl('x')", "tl() without weights_only=True"),
        ("import torch\ntorch.serialization.load('x')", "torch.serialization.load() without"),
        ("import numpy as np\nnp.load('x', allow_pickle=True)", "allow_pickle"),
        ("import pandas as pd\npd.read_pickle('x')", "read_pickle()"),
    ],
)
def test_the_checker_catches(source: str, expected: str) -> None:
    hits = pickle_uses(source)
    assert len(hits) == 1
    assert expected in hits[0]


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load('x', weights_only=True)",
        "import numpy as np\nnp.load('x')",
        "import numpy as np\nnp.load('x', allow_pickle=False)",
        "text = 'import pickle'  # import pickle",
        "from safetensors.torch import load_file\nload_file('x')",
    ],
)
def test_the_checker_allows(source: str) -> None:
    assert pickle_uses(source) == []
