"""No import circles in any package, and each package imports from the others only what it declares.

The graph is read from the source (AST), with imports inside functions and ``if TYPE_CHECKING:`` blocks
included (a type-only import still ties two modules' designs together), and package ``__init__`` faces left
out (they re-export their modules), as ``../shared/tools/import-circles`` reads it. ``from pkg import name``
is an edge to ``pkg.name`` when that is a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "ulmrec_eval": ROOT / "packages/ulmrec-eval/src/ulmrec_eval",
    "ulmrec_index": ROOT / "packages/ulmrec-index/src/ulmrec_index",
    "ulmrec_align": ROOT / "packages/ulmrec-align/src/ulmrec_align",
    "ulmrec_app": ROOT / "apps/tui/src/ulmrec_app",
}
#: The old top-level paths of ``ulmrec_eval.runtime``'s modules (deprecation shims, removed): nothing may
#: import them, and no module may come back under those names.
SHIMS = {f"ulmrec_eval.{name}" for name in ("errors", "io", "artifacts", "events", "cli_runner", "writer")}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for file in root.rglob("*.py"):
            parts = [package, *file.relative_to(root).with_suffix("").parts]
            if parts[-1] != "__init__":
                found[".".join(parts)] = file
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports (at module level or inside functions)."""
    file = MODULES[module]
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    package = module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(k for a in node.names if (k := _known(a.name)))
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                hit = full if full in MODULES else _known(target)
                if hit:
                    found.add(hit)
    found.discard(module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_packages() -> None:
    assert len(MODULES) > 120
    assert "ulmrec_align.tuning.train" in GRAPH["ulmrec_align.tuning.run"]   # a function-level import


def test_cycle_finder_finds_a_function_level_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circles(package: str) -> None:
    graph = {m: {d for d in deps if d.split(".")[0] == package} for m, deps in GRAPH.items()
             if m.split(".")[0] == package}
    assert cycles(graph) == []


def test_no_circles_across_packages() -> None:
    assert cycles(GRAPH) == []


def _eval_imports(package: str) -> Iterator[tuple[str, str]]:
    for module, deps in GRAPH.items():
        if module.split(".")[0] == package:
            yield from ((module, d) for d in deps if d.split(".")[0] == "ulmrec_eval")


@pytest.mark.parametrize("package", ["ulmrec_index", "ulmrec_align"])
def test_index_and_align_use_only_the_runtime_and_the_metrics_of_eval(package: str) -> None:
    """...and the cold-start rule, the one split decision every stage must make the same way."""
    modules = ("ulmrec_eval.metrics", "ulmrec_eval.cold_start")
    wrong = sorted(f"{m} -> {d}" for m, d in _eval_imports(package)
                   if not (d in modules or d.split(".")[:2] == ["ulmrec_eval", "runtime"]))
    assert wrong == []


def test_eval_never_imports_the_other_packages() -> None:
    wrong = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith("ulmrec_eval")
                   for d in deps if not d.startswith("ulmrec_eval"))
    assert wrong == []


def test_the_removed_shim_paths_stay_gone() -> None:
    assert sorted(SHIMS & set(MODULES)) == []
    users = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m not in SHIMS for d in deps if d in SHIMS)
    assert users == []


@pytest.mark.parametrize("floor", ["models", "prompts", "ranking", "losses"])
def test_ranking_and_what_it_stands_on_never_import_tuning(floor: str) -> None:
    """Tuning writes the tuned folder and ranking reads it: its manifest and loading live in ``models``; the
    losses, which the manifest's settings name, sit beside ranking."""
    wrong = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith(f"ulmrec_align.{floor}.")
                   for d in deps if d.startswith("ulmrec_align.tuning."))
    assert wrong == []
