"""Mutation testing of the modules whose errors are silent (issue 27). Not in CI: it runs the named tests once
per mutant.

Each mutant is one small change to the code, made with the standard library's ``ast`` in a **copy** of the
repository (the tracked and untracked-but-not-ignored files, in a temporary folder; the working tree is never
touched), and the target's test files run against it (``pytest -x``, with that copy's packages first on
``PYTHONPATH``). A mutant is *killed* when a test fails (or the run errors, or passes the time limit) and
*survives* when every test passes: a survivor is a change to the code that no test notices.

Mutations (one per mutant): arithmetic operators (``+ ↔ -``, ``* ↔ /``, ``// → /``, ``% → //``, ``** → *``,
``| ↔ &``, also in ``+=``…), comparisons (``< ↔ <=``, ``> ↔ >=``, ``== ↔ !=``, ``in ↔ not in``,
``is ↔ is not``), ``and ↔ or``, dropping a ``not`` or a unary minus, constants (``n → n + 1``,
``x → x + 1.0``, ``True ↔ False``), slice bounds (``a[i:j]`` → ``a[:j]`` and ``a[i:j + 1]``), and reductions
called by name (``min ↔ max``, ``argmin ↔ argmax``, ``amin ↔ amax``, ``minimum ↔ maximum``,
``sum ↔ mean``, ``floor ↔ ceil``). Docstrings, strings, f-strings, annotations and the arguments of ``raise``
are left alone. With more candidate sites than ``--max-mutants``, a seeded sample is taken (``--seed``).

Run (the figures of docs/mutation.md)::

    nice -n 10 .venv/bin/python bench/mutation.py run metrics rqkmeans rqvae --max-mutants 50

Other commands::

    .venv/bin/python bench/mutation.py list rqvae              # the mutants, without running anything
    .venv/bin/python bench/mutation.py run rqvae --only 7 12   # re-run chosen mutants (numbers of `list`)
    .venv/bin/python bench/mutation.py patch \\
        packages/ulmrec-index/src/ulmrec_index/quantizers/rqkmeans.py \\
        "return decode_sum(books, codes)" "return decode_sum(books, codes[:, :1])" \\
        tests/index/test_quantizer_rqkmeans.py                # one hand-made mutation: which test catches it?

Targets: see ``TARGETS`` (module, the functions mutated, the tests run). ``--json`` writes every result.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC_DIRS = ("packages/ulmrec-eval/src", "packages/ulmrec-index/src", "packages/ulmrec-align/src",
            "apps/tui/src")
INDEX = "packages/ulmrec-index/src/ulmrec_index/quantizers"
ALIGN = "packages/ulmrec-align/src/ulmrec_align"
PLUGIN = "_mutation_no_shrink"


@dataclass(frozen=True)
class Target:
    """Files to mutate (path -> qualified function names, empty: every function) and the tests that judge."""

    files: dict[str, tuple[str, ...]]
    tests: tuple[str, ...]
    note: str = ""


TARGETS: dict[str, Target] = {
    "metrics": Target(
        files={"packages/ulmrec-eval/src/ulmrec_eval/metrics.py": ()},
        tests=("tests/eval/test_metrics.py", "tests/eval/test_properties.py", "tests/eval/test_doctests.py"),
        note="every function of ulmrec_eval.metrics"),
    "rqkmeans": Target(
        files={f"{INDEX}/rqkmeans.py": ("RQKMeans.encode", "RQKMeans.decode", "RQKMeans.code_distances"),
               f"{INDEX}/residual.py": (),
               f"{INDEX}/kmeans.py": ("squared_distances", "nearest")},
        tests=("tests/index/test_quantizer_maths.py", "tests/index/test_quantizer_rqkmeans.py"),
        note="rqkmeans encode/decode/code_distances and the residual and distance helpers they call"),
    "rqvae": Target(
        files={f"{INDEX}/rqvae.py": ("RQVAE.encode", "RQVAE.decode", "RQVAE.code_distances", "RQVAE._assign",
                                     "RQVAE._standardize", "RQVAE.latent", "RQVAE._residual")},
        tests=("tests/index/test_quantizer_maths.py", "tests/index/test_quantizer_rqvae.py"),
        note="rqvae encode/decode/code_distances and the latent/assignment helpers they call"),
    "scorer": Target(
        files={f"{ALIGN}/ranking/scorer.py": ()},
        tests=("tests/align/tuning/test_choice_loss.py", "tests/align/llm/test_ranking.py"),
        note="slow (a tiny LLM pipeline per run)"),
    "fusion": Target(
        files={f"{ALIGN}/ranking/fusion.py": ()},
        tests=("tests/align/llm/test_fusion.py",),
        note="LLM + retriever score fusion"),
    "tasks": Target(
        files={f"{ALIGN}/tasks/builders.py": (),
               f"{ALIGN}/tasks/build.py": ("permute_codes", "random_codes")},
        tests=("tests/align/llm/test_tasks.py",),
        note="the alignment samples' builders and the code controls; slow (a tiny pipeline per run)"),
}

BINOPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
}
CMPOPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
NAMES = {"min": "max", "max": "min", "argmin": "argmax", "argmax": "argmin", "amin": "amax", "amax": "amin",
         "minimum": "maximum", "maximum": "minimum", "sum": "mean", "mean": "sum", "floor": "ceil",
         "ceil": "floor"}
OP_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
           ast.Pow: "**", ast.BitOr: "|", ast.BitAnd: "&", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
           ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is",
           ast.IsNot: "is not", ast.And: "and", ast.Or: "or"}


@dataclass
class Mutant:
    """One mutation site: the ``site``-th candidate (in walk order) of ``path``, with its ``variant``."""

    target: str
    path: str
    function: str
    line: int
    site: int
    variant: int
    before: str
    after: str
    number: int = 0
    status: str = ""  # killed | survived | timeout | error
    seconds: float = 0.0
    failed_test: str = ""


# ---------------------------------------------------------------- finding and applying mutations
def _skip_subtree(node: ast.AST) -> bool:
    return isinstance(node, ast.Raise | ast.JoinedStr | ast.Assert)


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
        node.value.value, str)


def _variants(node: ast.AST) -> list[tuple[str, Callable[[ast.AST], ast.AST]]]:
    """``(description, apply)`` of each mutation of ``node`` itself (``apply`` returns its replacement)."""
    out: list[tuple[str, Callable[[ast.AST], ast.AST]]] = []
    if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in BINOPS:
        new = BINOPS[type(node.op)]

        def swap_op(n: ast.AST, new: type[ast.operator] = new) -> ast.AST:
            n.op = new()  # type: ignore[attr-defined]
            return n

        out.append((f"'{OP_TEXT[type(node.op)]}' -> '{OP_TEXT[new]}'", swap_op))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in CMPOPS:
                new_cmp = CMPOPS[type(op)]

                def swap_cmp(n: ast.AST, i: int = i, new: type[ast.cmpop] = new_cmp) -> ast.AST:
                    n.ops[i] = new()  # type: ignore[attr-defined]
                    return n

                out.append((f"'{OP_TEXT[type(op)]}' -> '{OP_TEXT[new_cmp]}'", swap_cmp))
    elif isinstance(node, ast.BoolOp):
        new_bool = ast.Or if isinstance(node.op, ast.And) else ast.And

        def swap_bool(n: ast.AST, new: type[ast.boolop] = new_bool) -> ast.AST:
            n.op = new()  # type: ignore[attr-defined]
            return n

        out.append((f"'{OP_TEXT[type(node.op)]}' -> '{OP_TEXT[new_bool]}'", swap_bool))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        out.append((f"drop '{'not' if isinstance(node.op, ast.Not) else '-'}'",
                    lambda n: n.operand))  # type: ignore[attr-defined]
    elif isinstance(node, ast.Constant) and not isinstance(node.value, str | bytes | None):
        value = node.value
        if isinstance(value, bool):
            new_value: object = not value
        elif isinstance(value, int):
            new_value = value + 1
        elif isinstance(value, float):
            new_value = value + 1.0
        else:
            return out

        def set_const(n: ast.AST, v: object = new_value) -> ast.AST:
            return ast.copy_location(ast.Constant(value=v), n)

        out.append((f"{value!r} -> {new_value!r}", set_const))
    elif isinstance(node, ast.Slice):
        if node.lower is not None:
            def drop_lower(n: ast.AST) -> ast.AST:
                n.lower = None  # type: ignore[attr-defined]
                return n

            out.append(("drop the slice's start", drop_lower))
        if node.upper is not None:
            def widen(n: ast.AST) -> ast.AST:
                n.upper = ast.BinOp(left=n.upper, op=ast.Add(), right=ast.Constant(1))  # type: ignore[attr-defined]
                return n

            out.append(("slice end + 1", widen))
    elif isinstance(node, ast.Attribute) and node.attr in NAMES:
        def rename(n: ast.AST, new: str = NAMES[node.attr]) -> ast.AST:
            n.attr = new  # type: ignore[attr-defined]
            return n

        out.append((f".{node.attr} -> .{NAMES[node.attr]}", rename))
    return out


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function with its qualified name (``Class.method``; nested functions belong to their parent)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{node.name}.{item.name}", item


def _candidates(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """Nodes of the function body that may be mutated, in a fixed walk order."""
    def walk(node: ast.AST) -> Iterator[ast.AST]:
        if _skip_subtree(node) or _is_docstring(node):
            return
        yield node
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "decorator_list", "type_comment"):
                continue
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST):
                    yield from walk(child)

    for stmt in func.body:
        yield from walk(stmt)


def find_mutants(target_name: str, target: Target) -> list[Mutant]:
    """Every mutation of the target's functions (before sampling)."""
    out: list[Mutant] = []
    for path, wanted in target.files.items():
        source = (ROOT / path).read_text()
        tree = ast.parse(source)
        site = 0
        for qualname, func in _functions(tree):
            keep = not wanted or qualname in wanted
            for node in _candidates(func):
                variants = _variants(node)
                if keep:
                    for v, (text, _) in enumerate(variants):
                        segment = ast.get_source_segment(source, node) or ast.unparse(node)
                        out.append(Mutant(target=target_name, path=path, function=qualname,
                                          line=getattr(node, "lineno", func.lineno), site=site, variant=v,
                                          before=" ".join(segment.split())[:90], after=text))
                site += bool(variants)
    return out


def mutate_source(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant`` applied (the whole module re-rendered by ``ast.unparse``)."""
    tree = ast.parse(source)
    site = 0
    for _, func in _functions(tree):
        for node in _candidates(func):
            variants = _variants(node)
            if not variants:
                continue
            if site == mutant.site:
                replacement = variants[mutant.variant][1](node)
                if replacement is not node:
                    _replace_child(tree, node, replacement)
                return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
            site += 1
    raise ValueError(f"site {mutant.site} not found in {mutant.path}")


def _replace_child(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[[v is old for v in value].index(True)] = new
                return
    raise ValueError("node not found")


def sample(mutants: list[Mutant], cap: int, seed: int) -> list[Mutant]:
    """At most ``cap`` mutants per target, a seeded sample (in file and line order), numbered from 1."""
    chosen = mutants if len(mutants) <= cap else random.Random(seed).sample(mutants, cap)
    chosen = sorted(chosen, key=lambda m: (m.path, m.site, m.variant))
    for i, m in enumerate(chosen, 1):
        m.number = i
    return chosen


# ---------------------------------------------------------------- the copy and the test runs
@dataclass
class Sandbox:
    """A copy of the working tree whose packages come first on ``PYTHONPATH``."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, parent: Path) -> Sandbox:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.decode().split("\0")
        root = parent / "repo"
        for rel in filter(None, listed):
            src = ROOT / rel
            if src.is_file():
                dst = root / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        # a pytest plugin (-p) loaded before any test module: hypothesis draws the same examples on every run
        # (where a test does not say otherwise), keeps no database, and reports a failure without shrinking
        # it (a killed mutant is all this needs to know, and shrinking can take minutes)
        (root / f"{PLUGIN}.py").write_text(
            "from hypothesis import Phase, settings\n\n"
            "settings.register_profile('mutation', derandomize=True, database=None,\n"
            "                          phases=[Phase.explicit, Phase.generate])\n"
            "settings.load_profile('mutation')\n")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*(str(root / d) for d in SRC_DIRS), str(root),
                                             env.get("PYTHONPATH", "")])
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
        box = cls(root=root, env=env)
        where = subprocess.run([sys.executable, "-c", "import ulmrec_eval, ulmrec_index, ulmrec_align; "
                                "print(ulmrec_eval.__file__, ulmrec_index.__file__, ulmrec_align.__file__)"],
                               cwd=root, env=env, check=True, capture_output=True, text=True).stdout.split()
        if not all(Path(p).is_relative_to(root) for p in where):
            raise SystemExit(f"the copy's packages are not the ones imported: {where}")
        return box

    def pytest(self, tests: Sequence[str], timeout: float) -> tuple[str, float, str]:
        """``(status, seconds, first failing test)`` of ``pytest -x`` on ``tests`` in the copy."""
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", PLUGIN,
               "--no-header", "-rf", *tests]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - start, ""
        seconds = time.perf_counter() - start
        failed = next((line.split()[1] for line in proc.stdout.splitlines()
                       if line.startswith(("FAILED ", "ERROR "))), "")
        if proc.returncode == 0:
            return "survived", seconds, ""
        return ("killed" if proc.returncode == 1 else "error"), seconds, failed


def run_target(box: Sandbox, name: str, mutants: list[Mutant], *, timeout_factor: float,
               log: Callable[[str], None]) -> None:
    target = TARGETS[name]
    missing = [t for t in target.tests if not (box.root / t).exists()]
    if missing:
        raise SystemExit(f"{name}: test files missing: {missing}")
    originals = {path: (box.root / path).read_text() for path in target.files}
    # the baseline: the unmutated modules re-rendered by ast.unparse must pass (and set the time limit)
    for path, text in originals.items():
        (box.root / path).write_text(ast.unparse(ast.parse(text)) + "\n")
    status, seconds, failed = box.pytest(target.tests, timeout=1800)
    if status != "survived":
        raise SystemExit(f"{name}: the tests do not pass on the unmutated copy ({status} {failed})")
    limit = timeout_factor * seconds + 60
    log(f"\n== {name}: {len(mutants)} mutants of {', '.join(target.files)}; tests {' '.join(target.tests)} "
        f"(baseline {seconds:.0f} s, limit {limit:.0f} s)")
    try:
        for m in mutants:
            path = box.root / m.path
            path.write_text(mutate_source(originals[m.path], m))
            m.status, m.seconds, m.failed_test = box.pytest(target.tests, timeout=limit)
            for other, text in originals.items():  # restore (only one file was changed)
                if other == m.path:
                    (box.root / other).write_text(text)
            where = f"{Path(m.path).name}:{m.line} {m.function}"
            log(f"[{m.number:>3}/{len(mutants)}] {m.status:<8} {m.seconds:5.0f} s  {where}: {m.before!r}: "
                f"{m.after}" + (f"  <- {m.failed_test}" if m.failed_test else ""))
    finally:
        for path, text in originals.items():
            (box.root / path).write_text(text)


def summary(results: dict[str, list[Mutant]], candidates: dict[str, int]) -> str:
    lines = ["", "| target | candidate mutants | run | killed | timeout | error | survived |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, ms in results.items():
        count = {s: sum(m.status == s for m in ms) for s in ("killed", "timeout", "error", "survived")}
        lines.append(f"| {name} | {candidates[name]} | {len(ms)} | {count['killed']} | {count['timeout']} | "
                     f"{count['error']} | {count['survived']} |")
    for name, ms in results.items():
        survivors = [m for m in ms if m.status == "survived"]
        if survivors:
            lines.append(f"\nsurvivors of {name}:")
            lines.extend(f"  #{m.number} {m.path}:{m.line} {m.function}: {m.before!r}: {m.after}"
                         for m in survivors)
    return "\n".join(lines)


# ---------------------------------------------------------------- commands
def _targets(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    return list(names) or ["metrics", "rqkmeans", "rqvae"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("run", "list"):
        p = sub.add_parser(command)
        p.add_argument("targets", nargs="*",
                       help=f"default: metrics rqkmeans rqvae; any of {', '.join(TARGETS)}")
        p.add_argument("--max-mutants", type=int, default=50, help="per target (a seeded sample beyond it)")
        p.add_argument("--seed", type=int, default=0)
        if command == "run":
            p.add_argument("--only", type=int, nargs="*", help="run only these mutant numbers (one target)")
            p.add_argument("--timeout-factor", type=float, default=5.0,
                           help="a mutant's time limit: this × the baseline test time + 60 s")
            p.add_argument("--json", type=Path, help="write every result here")
    p = sub.add_parser("patch", help="one hand-made mutation (a literal replacement) and the tests to run")
    p.add_argument("file")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("tests", nargs="+")
    p.add_argument("--count", type=int, default=1,
                   help="occurrences of OLD that must be found (all are replaced)")
    args = parser.parse_args(argv)
    # on SIGTERM: unwind, so the running pytest is killed and the temporary copy removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.command == "patch":
        text = (ROOT / args.file).read_text()
        if text.count(args.old) != args.count:
            raise SystemExit(f"{args.old!r} occurs {text.count(args.old)} times in {args.file}, "
                             f"expected {args.count}")
        with tempfile.TemporaryDirectory(prefix="ulmrec-mutation-") as tmp:
            box = Sandbox.create(Path(tmp))
            (box.root / args.file).write_text(text.replace(args.old, args.new))
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", PLUGIN,
                   "--no-header", "-rf", *args.tests]
            proc = subprocess.run(cmd, cwd=box.root, env=box.env, text=True, capture_output=True)
            failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
            print("\n".join(failed) or "no test failed: the mutation SURVIVES")
            print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:])
            return 0 if failed else 1

    names = _targets(args.targets)
    found = {name: find_mutants(name, TARGETS[name]) for name in names}
    chosen = {name: sample(ms, args.max_mutants, args.seed) for name, ms in found.items()}
    if args.command == "list":
        for name, ms in chosen.items():
            print(f"== {name}: {len(ms)} of {len(found[name])} candidate mutants")
            for m in ms:
                print(f"  #{m.number} {m.path}:{m.line} {m.function}: {m.before!r}: {m.after}")
        return 0
    if args.only:
        if len(names) != 1:
            raise SystemExit("--only needs exactly one target")
        chosen[names[0]] = [m for m in chosen[names[0]] if m.number in set(args.only)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ulmrec-mutation-") as tmp:
        box = Sandbox.create(Path(tmp))
        for name in names:
            run_target(box, name, chosen[name], timeout_factor=args.timeout_factor,
                       log=lambda line: print(line, flush=True))
    print(summary(chosen, {n: len(found[n]) for n in names}))
    print(f"\n{time.perf_counter() - start:.0f} s in all; command: bench/mutation.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    if args.json:
        args.json.write_text(json.dumps({n: [asdict(m) for m in ms] for n, ms in chosen.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
