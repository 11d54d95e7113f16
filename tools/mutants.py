"""Mutation testing of clientdedupe's core: ``nox -s mutants`` (docs/mutation-testing.md).

An ast-based runner, standard library and pytest only: the test suite starts
subprocesses and real loopback servers, which mutmut and cosmic-ray handle poorly.

1. Mutants: each core module is parsed, and each mutation is applied as a text edit of
   the node's own source span (line numbers never move), so the mutant is the original
   file with one change. Docstrings, annotations, ``TYPE_CHECKING`` blocks, the arguments
   of logging calls, ``__repr__`` and lines marked ``# pragma: no mutate`` are left alone.
2. Workers: each is a copy of the repository (tracked and untracked, not ignored files,
   as they are in the working tree) with its own virtualenv (``.[test]``, the copy
   installed editable), so that the subprocesses the tests start import the mutant too.
   The real working tree is only read. Each worker runs ``tools/mutants_worker.py``, a
   fork server that imports pytest and the SDKs once and forks one pytest run per request.
3. Coverage: the unit tests run once, traced: which test executes which line of a core
   module, in the pytest process or in a subprocess. This is the baseline too: a test that
   fails there is reported and never selected.
4. Each mutant runs the tests that execute its lines: first those that do so in the
   pytest process, then, if it survives, those that do so only in a subprocess, each
   stage with ``-x``, earlier killers of the same function first, then fastest first.
   Killed: any failure, error, or timeout (a watchdog per test: 3x its baseline duration
   plus 5 s). A mutant of a module-level name also selects the tests executing the lines
   that read the name. A mutant whose lines no test executes is reported as not covered,
   without a run. To fit in an hour, a parametrization executing the same lines of the
   module as a faster one of the same test, a test slower than 30 s (traced) when
   others execute the lines too, and the tests past 30 s (traced) of a stage are left to
   ``--thorough``; a survivor says how many.
5. Report: per module, killed / all and killed / non-equivalent (the mutants listed in
   ``tools/mutants-equivalent.txt`` set aside), each survivor with file:line, operator
   and mutated line, and ``tools/mutants-report.json``.

    python tools/mutants.py                      # every core module, 2 workers
    python tools/mutants.py --modules _key _cache
    python tools/mutants.py --list               # the mutants, without running them
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

CORE_MODULES = (
    "_key",
    "_environ",
    "_cache",
    "_ownership",
    "_pools",
    "_lifetime",
    "_constructor",
    "_importhook",
)

#: The unit tests: as noxfile.py's ``UNIT_TESTS``.
TEST_PATHS = ("tests",)
TEST_IGNORES = (
    "tests/integration",
    "tests/test_benchmarks.py",
    "tests/test_demo.py",
    "tests/test_packaging.py",
)

PRAGMA = "# pragma: no mutate"
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical", "log"})
#: Calls whose string argument is an attribute or key name: worth mutating to "".
NAME_TAKING_METHODS = frozenset({"get", "pop", "setdefault", "startswith", "endswith"})
NAME_TAKING_FUNCTIONS = frozenset({"getattr", "hasattr", "setattr", "delattr"})
BOOLISH_CALLS = frozenset({"isinstance", "issubclass", "hasattr", "callable", "any", "all", "bool"})

COMPARE_SWAPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
}
OPERATORS = (
    "compare",
    "boolop",
    "not",
    "constant",
    "return",
    "delete",
    "break-continue",
    "if-true",
    "if-false",
    "handler-raise",
)

#: Every pytest run: quiet, no cache (the copy is the worker's), and no warning about the
#: modules the fork server imported before pytest could rewrite their asserts.
RUN_ARGS = ("-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")

#: Tests slower than this in the (traced) baseline are left to ``--thorough`` when others
#: execute the mutated lines too: the side-by-side stress tests, doctor's.
HEAVY = 30.0
#: Earlier killers tried first only if faster than this (traced), else they keep their place.
QUICK_KILLER = 10.0
#: Each stage of a mutant runs its tests, in order, until their (traced) baseline durations
#: add up to this (``--budget``); the rest are left to ``--thorough``. A survivor costs
#: about this, not minutes.
STAGE_BUDGET = 30.0

#: Per-test watchdog: this many times the baseline duration, plus the floor, in seconds.
TIMEOUT_FACTOR = 3.0
TIMEOUT_FLOOR = 5.0
#: Added to the run's whole budget: pytest's start and collection in the forked child.
RUN_OVERHEAD = 30.0


# Mutants ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Mutant:
    module: str
    operator: str
    qualname: str
    #: The lines of the mutated node: the tests executing one of them may kill it.
    lineno: int
    end_lineno: int
    start: int
    end: int
    replacement: str
    #: More lines whose tests may kill it (the reads of a module-level name).
    extra_lines: tuple[int, ...] = ()
    ident: str = ""
    original_text: str = ""
    mutated_text: str = ""

    @property
    def lines(self) -> tuple[int, ...]:
        return (*range(self.lineno, self.end_lineno + 1), *self.extra_lines)

    def apply(self, source: str) -> str:
        return source[: self.start] + self.replacement + source[self.end :]


def _squash(text: str) -> str:
    return " ".join(text.split())


class _Finder:
    """Walks one module's tree and collects its mutants."""

    def __init__(self, module: str, source: str) -> None:
        self.module = module
        self.source = source
        self.lines = source.splitlines(keepends=True)
        self._line_bytes = [line.encode() for line in self.lines]
        self._starts = [0]
        for line in self.lines:
            self._starts.append(self._starts[-1] + len(line))
        self.tree = ast.parse(source)
        self.found: list[Mutant] = []
        self._qual: list[str] = []
        self._functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self._extra: tuple[int, ...] = ()
        #: id(function or module) → its bindings (see ``_bindings``)
        self._scopes: dict[int, tuple[dict[str, int], set[str]]] = {}
        #: ids of conditions negated by no mutant of their own (see ``_condition``)
        self._whole_conditions: set[int] = set()

    # Positions.

    def _offset(self, lineno: int, col: int) -> int:
        # ast columns count UTF-8 bytes.
        chars = len(self._line_bytes[lineno - 1][:col].decode("utf-8", "replace"))
        return self._starts[lineno - 1] + chars

    def _span(self, node: ast.AST) -> tuple[int, int]:
        start = self._offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self._offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def _text(self, node: ast.AST) -> str:
        start, end = self._span(node)
        return self.source[start:end]

    def _pragma(self, first: int, last: int) -> bool:
        return any(PRAGMA in self.lines[n - 1] for n in range(first, last + 1))

    def _add(
        self,
        operator: str,
        node: ast.AST,
        start: int,
        end: int,
        replacement: str,
    ) -> None:
        first: int = node.lineno  # type: ignore[attr-defined]
        last: int = node.end_lineno or first  # type: ignore[attr-defined]
        if self._pragma(first, last):
            return
        original = self.source[start:end]
        missing = original.count("\n") - replacement.count("\n")
        if missing > 0:
            replacement += "\n" * missing  # keep every later line where it was
        self.found.append(
            Mutant(
                module=self.module,
                operator=operator,
                qualname=".".join(self._qual) or "<module>",
                lineno=first,
                end_lineno=last,
                start=start,
                end=end,
                replacement=replacement,
                extra_lines=self._extra,
            )
        )

    def _replace(self, operator: str, node: ast.AST, replacement: str, *, wrap: bool) -> None:
        """Replace the whole of ``node``; ``wrap``: in parentheses, if it spans lines."""
        start, end = self._span(node)
        if wrap and "\n" in self.source[start:end]:
            replacement = f"({replacement}" + "\n" * self.source[start:end].count("\n") + ")"
        self._add(operator, node, start, end, replacement)

    # Statements.

    def run(self) -> list[Mutant]:
        self._body(self.tree.body)
        return self.found

    def _body(self, body: Sequence[ast.stmt]) -> None:
        for index, statement in enumerate(body):
            if index == 0 and _is_docstring(statement):
                continue
            self._statement(statement)

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name == "__repr__":
                return
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self._expression(default)
            self._qual.append(node.name)
            self._functions.append(node)
            self._body(node.body)
            self._functions.pop()
            self._qual.pop()
            return
        if isinstance(node, ast.ClassDef):
            self._qual.append(node.name)
            self._body(node.body)
            self._qual.pop()
            return
        if _mentions_type_checking(node) or _assigns_dunder(node):
            return
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Pass)):
            return
        if isinstance(node, (ast.Raise, ast.Assert)):
            return  # their messages and conditions are not behaviour worth a mutant each
        module_level = not self._qual
        if module_level:
            self._extra = self._reads_of(_assigned_names(node), node)
        try:
            self._statement_mutants(node)
            self._children(node)
        finally:
            self._extra = ()

    def _statement_mutants(self, node: ast.stmt) -> None:
        deletable = isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)) or (
            isinstance(node, ast.AnnAssign) and node.value is not None
        )
        if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)):
            deletable = True
        if (
            deletable
            and not self._binds_only_names_read_later(node)
            and self._alone_on_its_lines(node)
        ):
            self._replace("delete", node, "pass", wrap=False)
        if isinstance(node, ast.Break):
            self._replace("break-continue", node, "continue", wrap=False)
        if isinstance(node, ast.Continue):
            self._replace("break-continue", node, "break", wrap=False)
        if isinstance(node, ast.Return) and node.value is not None:
            self._return(node.value)
        if isinstance(node, ast.If) and not isinstance(node.test, ast.Constant):
            self._condition(node.test)
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                self._handler(handler)

    def _binds_only_names_read_later(self, node: ast.stmt) -> bool:
        """An assignment to plain names, each bound nowhere else in its scope and read
        there: without it, the first read raises ``NameError``, so any test executing it
        kills its deletion, which would say no more than the coverage does."""
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            return False
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [n for t in targets for n in ast.walk(t) if not isinstance(n, ast.expr_context)]
        if not all(isinstance(n, (ast.Name, ast.Tuple, ast.List)) for n in names):
            return False
        scope: ast.AST = self._functions[-1] if self._functions else self.tree
        stores, loads = self._bindings(scope)
        return all(
            stores.get(n.id, 0) == 1 and n.id in loads for n in names if isinstance(n, ast.Name)
        )

    def _bindings(self, scope: ast.AST) -> tuple[dict[str, int], set[str]]:
        """(name → times bound, names read) in ``scope``, nested scopes included."""
        found = self._scopes.get(id(scope))
        if found is None:
            stores: dict[str, int] = {}
            loads: set[str] = set()
            for node in ast.walk(scope):
                if isinstance(node, ast.Name):
                    if isinstance(node.ctx, ast.Load):
                        loads.add(node.id)
                    else:
                        stores[node.id] = stores.get(node.id, 0) + 1
                elif isinstance(node, (ast.Global, ast.Nonlocal)):
                    for name in node.names:  # bound by another scope too
                        stores[name] = stores.get(name, 0) + 2
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    stores[node.name] = stores.get(node.name, 0) + 1
                elif isinstance(node, ast.arg):
                    stores[node.arg] = stores.get(node.arg, 0) + 1
            found = self._scopes[id(scope)] = (stores, loads)
        return found

    def _condition(self, test: ast.expr) -> None:
        """An ``if`` (or ternary) condition: always true, always false. Negating it whole
        (swapping its only comparison, dropping its ``not``) would be a third mutant that
        tests which kill these two kill in practice: it is not made."""
        self._replace("if-true", test, "True", wrap=True)
        self._replace("if-false", test, "False", wrap=True)
        if _is_negation_pair(test):
            self._whole_conditions.add(id(test))

    def _alone_on_its_lines(self, node: ast.stmt) -> bool:
        """No other statement on its first or last line (``a = 1; b = 2``)."""
        start, end = self._span(node)
        before = self.source[self._starts[node.lineno - 1] : start]
        line_end = self.source.find("\n", end)
        after = self.source[end : line_end if line_end != -1 else len(self.source)]
        before, after = before.strip(), after.strip()
        return (not before or before.endswith(":")) and (not after or after.startswith("#"))

    def _return(self, value: ast.expr) -> None:
        if isinstance(value, ast.Constant) and (value.value is None or type(value.value) is bool):
            return  # None is already what the mutant would return; booleans: "constant"
        function = self._functions[-1] if self._functions else None
        returns_bool = (
            function is not None
            and isinstance(function.returns, ast.Name)
            and function.returns.id == "bool"
        ) or (
            function is not None
            and isinstance(function.returns, ast.Constant)
            and function.returns.value == "bool"
        )
        if _is_negation_pair(value):
            return  # "return not (a == b)" is the comparison swap "return a != b"
        if returns_bool or _is_boolish(value):
            self._replace("return", value, f"not ({self._text(value)})", wrap=True)
        else:
            self._replace("return", value, "None", wrap=True)

    def _handler(self, handler: ast.ExceptHandler) -> None:
        body = handler.body
        if len(body) == 1 and isinstance(body[0], ast.Raise) and body[0].exc is None:
            return
        first, last = body[0], body[-1]
        start = self._offset(first.lineno, first.col_offset)
        end = self._offset(last.end_lineno or last.lineno, last.end_col_offset or 0)
        node = ast.Pass(lineno=first.lineno, end_lineno=last.end_lineno)
        self._add("handler-raise", node, start, end, "raise")

    def _children(self, node: ast.stmt) -> None:
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns", "type_comment", "targets", "target"):
                continue
            if field in ("body", "orelse", "finalbody"):
                self._body(value)
            elif field == "handlers":
                for handler in value:
                    self._body(handler.body)
            elif field == "items":
                for item in value:
                    self._expression(item.context_expr)
            elif isinstance(value, ast.expr):
                self._expression(value)
            elif isinstance(value, list):
                for element in value:
                    if isinstance(element, ast.expr):
                        self._expression(element)

    def _reads_of(self, names: set[str], node: ast.stmt) -> tuple[int, ...]:
        """The lines, outside ``node``, that read one of the module-level ``names``."""
        if not names:
            return ()
        own = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        lines = {
            found.lineno
            for found in ast.walk(self.tree)
            if isinstance(found, ast.Name)
            and isinstance(found.ctx, ast.Load)
            and found.id in names
            and found.lineno not in own
        }
        return tuple(sorted(lines))

    # Expressions.

    def _expression(self, node: ast.expr, *, names: bool = False) -> None:
        """``names``: a string here is compared or names an attribute or a key."""
        if isinstance(node, ast.Compare):
            if id(node) not in self._whole_conditions:
                self._compare(node)
            for part in (node.left, *node.comparators):
                self._expression(part, names=True)
            return
        if isinstance(node, ast.BoolOp):
            self._boolop(node)
        elif (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.Not)
            and id(node) not in self._whole_conditions
        ):
            self._replace("not", node, f"({self._text(node.operand)})", wrap=False)
        elif isinstance(node, ast.Constant):
            self._constant(node, names=names)
            return
        elif isinstance(node, ast.JoinedStr):
            return
        elif isinstance(node, ast.IfExp) and not isinstance(node.test, ast.Constant):
            self._condition(node.test)
        elif isinstance(node, ast.Call):
            self._call(node)
            return
        elif isinstance(node, ast.Lambda):
            self._expression(node.body)
            return
        keep_names = names and isinstance(node, (ast.Tuple, ast.List, ast.Set))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expression(child, names=keep_names)
            elif isinstance(child, ast.comprehension):
                self._expression(child.iter)
                for condition in child.ifs:
                    self._expression(condition)

    def _call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in LOG_METHODS:
            return  # what a log line says is not mutated (deleting the call is)
        self._expression(func)
        name_at = -1
        if isinstance(func, ast.Name) and func.id in NAME_TAKING_FUNCTIONS:
            name_at = 1
        elif isinstance(func, ast.Attribute) and func.attr in NAME_TAKING_METHODS:
            name_at = 0
        for index, argument in enumerate(node.args):
            self._expression(argument, names=index == name_at)
        for keyword in node.keywords:
            self._expression(keyword.value)

    def _compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for index, operator in enumerate(node.ops):
            old, new = COMPARE_SWAPS[type(operator)]
            _, gap_start = self._span(operands[index])
            gap_end, _ = self._span(operands[index + 1])
            gap = self.source[gap_start:gap_end]
            pattern = r"\s+".join(re.escape(word) for word in old.split())
            if old.isalpha() or " " in old:
                pattern = rf"(?<![\w]){pattern}(?![\w])"
            edited, count = re.subn(pattern, new, gap, count=1)
            if count != 1:
                continue
            self._add("compare", node, gap_start, gap_end, edited)

    def _boolop(self, node: ast.BoolOp) -> None:
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        start, end = self._span(node)
        pieces = []
        position = start
        for left, right in zip(node.values, node.values[1:]):
            _, gap_start = self._span(left)
            gap_end, _ = self._span(right)
            gap = self.source[gap_start:gap_end]
            edited, count = re.subn(rf"(?<![\w]){old}(?![\w])", new, gap, count=1)
            if count != 1:
                return
            pieces.append(self.source[position:gap_start])
            pieces.append(edited)
            position = gap_end
        pieces.append(self.source[position:end])
        self._add("boolop", node, start, end, "".join(pieces))

    def _constant(self, node: ast.Constant, *, names: bool) -> None:
        value = node.value
        if type(value) is bool:
            self._replace("constant", node, repr(not value), wrap=False)
        elif type(value) is int:
            for changed in sorted({1 if value == 0 else value - 1, value + 1}):
                if changed != value and not (value == 0 and changed < 0):
                    self._replace("constant", node, repr(changed), wrap=False)
        elif type(value) is str and "\n" not in self._text(node):
            if value == "":
                self._replace("constant", node, repr("XX"), wrap=False)
            elif names:
                self._replace("constant", node, '""', wrap=False)


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _mentions_type_checking(node: ast.stmt) -> bool:
    if isinstance(node, ast.If):
        return any(isinstance(n, ast.Name) and n.id == "TYPE_CHECKING" for n in ast.walk(node.test))
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == "TYPE_CHECKING" for t in targets)
    return False


def _assigns_dunder(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        return any(
            isinstance(t, ast.Name) and t.id in ("__slots__", "__all__") for t in node.targets
        )
    return False


def _assigned_names(node: ast.stmt) -> set[str]:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _is_negation_pair(node: ast.expr) -> bool:
    """A single comparison, or a ``not``: its negation is one mutant of its own."""
    if isinstance(node, ast.Compare):
        return len(node.ops) == 1
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)


def _is_boolish(node: ast.expr) -> bool:
    if isinstance(node, (ast.Compare, ast.BoolOp)):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in BOOLISH_CALLS
    )


def generate(sources: dict[str, str], operators: Sequence[str]) -> list[Mutant]:
    """Every mutant of the modules in ``sources`` (name → text): valid Python, each
    distinct, with a stable id."""
    mutants: list[Mutant] = []
    for module, source in sources.items():
        seen: set[str] = {source}
        occurrences: dict[tuple[str, ...], int] = {}
        lines = source.splitlines()
        for mutant in _Finder(module, source).run():
            if mutant.operator not in operators:
                continue
            mutated = mutant.apply(source)
            if mutated in seen:
                continue
            try:
                compile(mutated, f"{module}.py", "exec", dont_inherit=True)
            except SyntaxError:
                continue
            seen.add(mutated)
            mutated_lines = mutated.splitlines()
            span = slice(mutant.lineno - 1, mutant.end_lineno)
            mutant.original_text = _squash(" ".join(lines[span]))
            mutant.mutated_text = _squash(" ".join(mutated_lines[span]))
            signature = (
                module,
                mutant.qualname,
                mutant.operator,
                mutant.original_text,
                mutant.mutated_text,
            )
            occurrence = occurrences[signature] = occurrences.get(signature, -1) + 1
            digest = hashlib.sha1("\0".join((*signature, str(occurrence))).encode()).hexdigest()
            mutant.ident = f"{module}:{mutant.qualname}:{mutant.operator}:{digest[:10]}"
            mutants.append(mutant)
    return mutants


# Equivalent mutants -----------------------------------------------------------------------


def load_equivalents(path: Path) -> dict[str, str]:
    """``id | mutated line (for the reader) | reason`` lines; ``#`` starts a comment."""
    equivalents: dict[str, str] = {}
    if not path.exists():
        return equivalents
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(" | ")]
        if len(fields) < 2 or not fields[-1]:
            raise SystemExit(f"{path}:{number}: expected 'id | mutated line | reason'")
        equivalents[fields[0]] = fields[-1]
    return equivalents


# Workers ----------------------------------------------------------------------------------


def _source_files(repo: Path) -> list[str]:
    """The repository's files as a clean clone would have them, plus untracked ones."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "-co", "--exclude-standard"],
            check=True,
            capture_output=True,
        ).stdout.decode()
        return [name for name in listed.split("\0") if name and (repo / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", ".nox", "__pycache__", "build", "dist"}
        files = []
        for path in repo.rglob("*"):
            relative = path.relative_to(repo)
            if path.is_file() and not skip.intersection(relative.parts):
                files.append(str(relative))
        return files


def _find_uv() -> list[str] | None:
    found = shutil.which("uv")
    if found:
        return [found]
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return [str(beside)]
    if importlib.util.find_spec("uv") is None:
        return None
    return [sys.executable, "-m", "uv"]


BOOT_MODULE = """\
# Written by tools/mutants.py: traces a subprocess of a test during the coverage run.
import os

if os.environ.get("{trace}") and os.environ.get("{module}"):
    import importlib.util
    import sys

    _spec = importlib.util.spec_from_file_location("_mutants_worker", os.environ["{module}"])
    _worker = importlib.util.module_from_spec(_spec)
    sys.modules["_mutants_worker"] = _worker
    _spec.loader.exec_module(_worker)
    _worker.start_in_subprocess()
"""


@dataclasses.dataclass
class RunResult:
    killed: bool
    code: int | None
    timed_out: bool
    seconds: float
    cpu_seconds: float
    failed: str | None
    result: dict[str, Any]


class Worker:
    """A copy of the repository, its virtualenv and its fork server."""

    def __init__(self, index: int, workdir: Path, repo: Path, files: list[str]) -> None:
        self.index = index
        self.home = workdir / f"worker{index}"
        self.root = self.home / "repo"
        self.venv = self.home / "venv"
        self.python = self.venv / "bin" / "python"
        self._repo = repo
        self._files = files
        self._server: subprocess.Popen[str] | None = None
        self._originals: dict[str, str] = {}
        self._epoch = int(time.time()) + 10
        self._versions = 0

    def prepare(self, python: str) -> None:
        for name in self._files:
            target = self.root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self._repo / name, target)
        spec = f"{self.root}[test]"
        uv = _find_uv()
        if uv is not None:
            _check([*uv, "venv", "--quiet", "--python", python, str(self.venv)])
            install = [*uv, "pip", "install", "--quiet", "--compile-bytecode"]
            _check([*install, "--python", str(self.python), "-e", spec])
        else:
            _check([python, "-m", "venv", str(self.venv)])
            _check([str(self.python), "-m", "pip", "install", "--quiet", "-e", spec])
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        boot = BOOT_MODULE.format(trace="MUTANTS_TRACE", module="MUTANTS_TRACE_MODULE")
        Path(purelib, "_clientdedupe_mutants_boot.py").write_text(boot, encoding="utf-8")
        Path(purelib, "_clientdedupe_mutants_boot.pth").write_text(
            "import _clientdedupe_mutants_boot\n", encoding="utf-8"
        )
        for cache in (self.root / "clientdedupe").rglob("__pycache__"):
            shutil.rmtree(cache)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
            env.pop(name, None)
        # .pyc files are written (pytest's rewritten tests are cached): a mutant is never
        # read from a stale one, since each version of a module written gets a new mtime.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["VIRTUAL_ENV"] = str(self.venv)
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["MUTANTS_TRACE_MODULE"] = str(Path(__file__).with_name("mutants_worker.py"))
        env.pop("MUTANTS_TRACE", None)
        return env

    def start(self) -> None:
        log = open(self.home / "server.log", "w", encoding="utf-8")  # noqa: SIM115
        self._server = subprocess.Popen(
            [str(self.python), str(Path(__file__).with_name("mutants_worker.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=self.root,
            env=self.environment(),
        )
        log.close()
        assert self._server.stdout is not None
        ready = self._server.stdout.readline()
        if not ready:
            raise SystemExit(f"worker {self.index} did not start: see {self.home / 'server.log'}")

    def stop(self) -> None:
        if self._server is not None and self._server.stdin is not None:
            self._server.stdin.close()
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()

    def run(
        self,
        args: Sequence[str],
        *,
        limits: dict[str, float] | None = None,
        default_limit: float | None = None,
        timeout: float,
        trace: dict[str, Any] | None = None,
    ) -> RunResult:
        server = self._server
        assert server is not None and server.stdin is not None and server.stdout is not None
        result_path = self.home / "result.json"
        result_path.unlink(missing_ok=True)
        request = {
            "args": list(args),
            "cwd": str(self.root),
            "log": str(self.home / "pytest.log"),
            "result": str(result_path),
            "limits": limits or {},
            "default_limit": default_limit,
            "timeout": timeout,
            "trace": trace,
        }
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        line = server.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.index} died: see {self.home / 'server.log'}")
        response = json.loads(line)
        result: dict[str, Any] = {}
        if result_path.exists():
            with contextlib.suppress(ValueError):
                result = json.loads(result_path.read_text(encoding="utf-8"))
        code = response["code"]
        timed_out = bool(response["timed_out"]) or "timeout" in result
        failed = result.get("timeout") or result.get("failed")
        return RunResult(
            killed=timed_out or code not in (0, 5),
            code=code,
            timed_out=timed_out,
            seconds=float(response["seconds"]),
            cpu_seconds=float(response.get("cpu_seconds", 0.0)),
            failed=failed,
            result=result,
        )

    # Mutants.

    def write_module(self, module: str, text: str) -> None:
        path = self.root / "clientdedupe" / f"{module}.py"
        if module not in self._originals:
            self._originals[module] = path.read_text(encoding="utf-8")
        self._write(path, text)

    def restore(self, module: str) -> None:
        if module in self._originals:
            self._write(self.root / "clientdedupe" / f"{module}.py", self._originals[module])

    def _write(self, path: Path, text: str) -> None:
        # A .pyc is checked against its source's size and mtime in whole seconds: a mutant
        # of the same size written within the same second would be read from the .pyc of
        # the previous version. So each version written gets an mtime of its own.
        path.write_text(text, encoding="utf-8")
        self._versions += 1
        stamp = self._epoch + self._versions
        os.utime(path, (stamp, stamp))


def _check(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stdout}{result.stderr}")


# Coverage ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Selection:
    #: Run first: the tests executing the mutant's lines in the pytest process.
    first: list[str]
    #: Run if it survives: those executing them only in subprocesses they start.
    second: list[str]
    #: Left to ``--thorough`` (see ``Coverage.select``).
    deferred: int
    how: str


@dataclasses.dataclass
class Coverage:
    #: (module, line) → tests executing it in the pytest process
    in_process: dict[tuple[str, int], set[str]]
    #: (module, line) → tests executing it in a subprocess they started
    in_subprocess: dict[tuple[str, int], set[str]]
    #: (module, line) executed outside any test (importing, collecting)
    outside: set[tuple[str, int]]
    durations: dict[str, float]
    #: tests that passed: the only ones selected
    passing: set[str]
    failing: dict[str, str]
    seconds: float
    _footprint_cache: dict[int, dict[tuple[str, str], frozenset[int]]] = dataclasses.field(
        default_factory=dict
    )

    def select(self, mutant: Mutant, *, thorough: bool) -> Selection:
        """The tests that may kill ``mutant``: those executing one of its lines."""
        keys = [(mutant.module, line) for line in mutant.lines]
        first = {t for key in keys for t in self.in_process.get(key, ())}
        second = {t for key in keys for t in self.in_subprocess.get(key, ())} - first
        how = "coverage"
        if not first and not second and any(key in self.outside for key in keys):
            # Executed only while importing: any test using the module may tell.
            how = "module"
            first = {
                t for (m, _), tests in self.in_process.items() if m == mutant.module for t in tests
            }
            second = {
                t
                for (m, _), tests in self.in_subprocess.items()
                if m == mutant.module
                for t in tests
            } - first
        first_tests, second_tests = self._order(first), self._order(second)
        if thorough:
            return Selection(first_tests, second_tests, 0, how)
        first_kept = self._representatives(first_tests, self.in_process, mutant.module)
        second_kept = self._representatives(second_tests, self.in_subprocess, mutant.module)
        deferred = len(first_tests) + len(second_tests) - len(first_kept) - len(second_kept)
        return Selection(first_kept, second_kept, deferred, how)

    def _representatives(
        self, tests: list[str], lines: dict[tuple[str, int], set[str]], module: str
    ) -> list[str]:
        """``tests`` (fastest first) without the deferred ones: a parametrization of a test
        executing the same lines of ``module`` as a faster one of the same test, and the
        tests slower than ``HEAVY`` seconds, unless nothing else is left."""
        footprints = self._footprints(lines)
        seen: set[tuple[str, frozenset[int]]] = set()
        kept = []
        for test in tests:
            shape = (test.split("[", 1)[0], footprints.get((test, module), frozenset()))
            if shape in seen:
                continue
            seen.add(shape)
            kept.append(test)
        light = [t for t in kept if self.durations.get(t, 0.0) <= HEAVY]
        return light or kept

    def _footprints(
        self, lines: dict[tuple[str, int], set[str]]
    ) -> dict[tuple[str, str], frozenset[int]]:
        """(test, module) → the lines of ``module`` the test executes (in ``lines``)."""
        cached = self._footprint_cache.get(id(lines))
        if cached is None:
            found: dict[tuple[str, str], set[int]] = {}
            for (module, line), tests in lines.items():
                for test in tests:
                    found.setdefault((test, module), set()).add(line)
            cached = {key: frozenset(value) for key, value in found.items()}
            self._footprint_cache[id(lines)] = cached
        return cached

    def save(self, path: Path) -> None:
        def lines(found: dict[tuple[str, int], set[str]]) -> list[list[object]]:
            return [[module, line, sorted(tests)] for (module, line), tests in found.items()]

        data = {
            "in_process": lines(self.in_process),
            "in_subprocess": lines(self.in_subprocess),
            "outside": sorted(self.outside),
            "durations": self.durations,
            "passing": sorted(self.passing),
            "failing": self.failing,
            "seconds": self.seconds,
        }
        path.write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Coverage:
        data = json.loads(path.read_text(encoding="utf-8"))

        def lines(found: list[list[Any]]) -> dict[tuple[str, int], set[str]]:
            return {(module, line): set(tests) for module, line, tests in found}

        return cls(
            lines(data["in_process"]),
            lines(data["in_subprocess"]),
            {(module, line) for module, line in data["outside"]},
            data["durations"],
            set(data["passing"]),
            data["failing"],
            data["seconds"],
        )

    def _order(self, tests: set[str]) -> list[str]:
        chosen = [t for t in tests if t in self.passing]
        return sorted(chosen, key=lambda t: (self.durations.get(t, 0.0), t))


def _collect(worker: Worker, paths: Sequence[str], ignores: Sequence[str]) -> list[str]:
    args = [*RUN_ARGS, "--collect-only", *paths]
    args += [f"--ignore={path}" for path in ignores]
    run = worker.run(args, timeout=600)
    collected: list[str] = run.result.get("collected", [])
    if not collected:
        raise SystemExit(f"collecting the tests failed: see {worker.home / 'pytest.log'}")
    return collected


def measure_coverage(
    workers: list[Worker], modules: Sequence[str], paths: Sequence[str], ignores: Sequence[str]
) -> Coverage:
    """Run the unit tests once, traced, file by file, on every worker."""
    started = time.monotonic()
    tests = _collect(workers[0], paths, ignores)
    by_file: dict[str, list[str]] = {}
    for test in tests:
        by_file.setdefault(test.split("::")[0], []).append(test)
    # The largest files first, so that the workers end together.
    files: queue.Queue[str] = queue.Queue()
    for name in sorted(by_file, key=lambda f: -len(by_file[f])):
        files.put(name)
    durations: dict[str, float] = {}
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def work(worker: Worker) -> None:
        trace = {
            "path": str(worker.home / "trace.txt"),
            "root": str(worker.root),
            "modules": list(modules),
        }
        while True:
            try:
                name = files.get_nowait()
            except queue.Empty:
                return
            run = worker.run([*RUN_ARGS, name], timeout=1800, trace=trace)
            print(f"  coverage: {name}: {len(by_file[name])} tests, {run.seconds:.0f} s")
            with lock:
                durations.update(run.result.get("durations", {}))
                outcomes.update(run.result.get("outcomes", {}))
                for test in by_file[name]:
                    outcomes.setdefault(test, "not run")

    _in_parallel(work, workers)
    in_process: dict[tuple[str, int], set[str]] = {}
    in_subprocess: dict[tuple[str, int], set[str]] = {}
    outside: set[tuple[str, int]] = set()
    for worker in workers:
        path = worker.home / "trace.txt"
        if not path.exists():
            continue
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = raw.split("\t")
            if len(fields) != 4 or not fields[3].isdigit():
                continue
            kind, test, module, line = fields
            key = (module, int(line))
            if not test:
                outside.add(key)
            elif kind == "i":
                in_process.setdefault(key, set()).add(test)
            else:
                in_subprocess.setdefault(key, set()).add(test)
    failed = [t for t, outcome in outcomes.items() if outcome not in ("passed", "skipped")]
    if failed:
        # Tracing slows a test down several times: one that keeps time (threads, a
        # signal handler) may fail only then. Run untraced, it may still be selected.
        retry = workers[0].run([*RUN_ARGS, *failed], timeout=600 + 10 * len(failed))
        for test, outcome in retry.result.get("outcomes", {}).items():
            if outcome == "passed":
                print(f"  {test}: failed traced, passed untraced")
                outcomes[test] = "passed"
    passing = {t for t, outcome in outcomes.items() if outcome == "passed"}
    failing = {t: o for t, o in outcomes.items() if o not in ("passed", "skipped")}
    return Coverage(
        in_process,
        in_subprocess,
        outside,
        durations,
        passing,
        failing,
        time.monotonic() - started,
    )


# Running ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    status: str  # killed, survived, uncovered, equivalent (listed, not run)
    stage: str = ""
    killer: str | None = None
    timed_out: bool = False
    #: tests run, and tests left to --thorough (a survivor's)
    tests: int = 0
    deferred: int = 0
    seconds: float = 0.0
    #: CPU time of the runs, subprocesses included: what the run costs on an idle machine
    cpu_seconds: float = 0.0
    selection: str = ""


def _limits(tests: list[str], coverage: Coverage) -> dict[str, float]:
    return {t: TIMEOUT_FACTOR * coverage.durations.get(t, 1.0) + TIMEOUT_FLOOR for t in tests}


def _within_budget(tests: list[str], coverage: Coverage, budget: float) -> list[str]:
    """The first of ``tests`` whose baseline durations add up to ``budget`` seconds (one
    at least)."""
    kept: list[str] = []
    spent = 0.0
    for test in tests:
        spent += coverage.durations.get(test, 0.0)
        if kept and spent > budget:
            break
        kept.append(test)
    return kept


class Killers:
    """The tests that killed the earlier mutants of each function and module, latest
    first: a mutant tries them before the others (most mutants of a function die by the
    same few tests, rarely the fastest ones)."""

    #: How many of a module's latest killers a mutant tries first.
    MODULE_KILLERS = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_place: dict[str, list[str]] = {}

    def order(self, mutant: Mutant, tests: list[str], coverage: Coverage) -> list[str]:
        with self._lock:
            function = self._by_place.get(f"{mutant.module}:{mutant.qualname}", [])
            module = self._by_place.get(mutant.module, [])[: self.MODULE_KILLERS]
            preferred = [*function, *module]
        chosen = {t for t in tests if coverage.durations.get(t, 0.0) <= QUICK_KILLER}
        head = list(dict.fromkeys(t for t in preferred if t in chosen))
        first = set(head)
        return head + [t for t in tests if t not in first]

    def add(self, mutant: Mutant, test: str) -> None:
        with self._lock:
            for place in (f"{mutant.module}:{mutant.qualname}", mutant.module):
                tests = self._by_place.setdefault(place, [])
                if test in tests:
                    tests.remove(test)
                tests.insert(0, test)


def run_mutant(
    worker: Worker,
    mutant: Mutant,
    source: str,
    coverage: Coverage,
    killers: Killers,
    *,
    thorough: bool,
    budget: float,
) -> Outcome:
    selection = coverage.select(mutant, thorough=thorough)
    if not selection.first and not selection.second:
        return Outcome("uncovered", selection=selection.how)
    worker.write_module(mutant.module, mutant.apply(source))
    outcome = Outcome("survived", deferred=selection.deferred, selection=selection.how)
    try:
        for stage, tests in (
            ("pytest process", selection.first),
            ("subprocesses", selection.second),
        ):
            if not tests:
                continue
            tests = killers.order(mutant, tests, coverage)
            if not thorough:
                kept = _within_budget(tests, coverage, budget)
                outcome.deferred += len(tests) - len(kept)
                tests = kept
            limits = _limits(tests, coverage)
            run = worker.run(
                [*RUN_ARGS, "-x", *tests],
                limits=limits,
                timeout=sum(limits.values()) + RUN_OVERHEAD,
            )
            outcome.seconds += run.seconds
            outcome.cpu_seconds += run.cpu_seconds
            outcome.tests += len(run.result.get("durations", {}))
            if run.killed:
                if run.failed is not None:
                    killers.add(mutant, run.failed)
                outcome.status = "killed"
                outcome.stage = stage
                outcome.killer = run.failed or ("timeout" if run.timed_out else f"exit {run.code}")
                outcome.timed_out = run.timed_out
                outcome.deferred = 0
                return outcome
        return outcome
    finally:
        worker.restore(mutant.module)


def _in_parallel(work: Any, workers: list[Worker]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        for future in [pool.submit(work, worker) for worker in workers]:
            future.result()


def run_all(
    workers: list[Worker],
    mutants: list[Mutant],
    sources: dict[str, str],
    coverage: Coverage,
    *,
    skip: set[str],
    thorough: bool,
    budget: float,
) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    pending: queue.Queue[Mutant] = queue.Queue()
    for mutant in mutants:
        if mutant.ident in skip:
            outcomes[mutant.ident] = Outcome("equivalent")
        else:
            pending.put(mutant)
    total = pending.qsize()
    done = 0
    killers = Killers()
    lock = threading.Lock()
    started = time.monotonic()

    def work(worker: Worker) -> None:
        nonlocal done
        while True:
            try:
                mutant = pending.get_nowait()
            except queue.Empty:
                return
            source = sources[mutant.module]
            outcome = run_mutant(
                worker, mutant, source, coverage, killers, thorough=thorough, budget=budget
            )
            with lock:
                outcomes[mutant.ident] = outcome
                done += 1
                if outcome.status != "killed" or done % 25 == 0 or done == total:
                    elapsed = time.monotonic() - started
                    print(
                        f"  [{done}/{total} {elapsed / 60:.1f} min] {outcome.status:9} "
                        f"{outcome.seconds:4.0f} s "
                        f"clientdedupe/{mutant.module}.py:{mutant.lineno} "
                        f"[{mutant.operator}] {mutant.mutated_text[:90]}",
                        flush=True,
                    )

    _in_parallel(work, workers)
    return outcomes


def plan(mutants: list[Mutant], coverage: Coverage, *, thorough: bool, budget: float) -> None:
    """What the mutants would cost, by module, in seconds of their tests' (traced)
    baseline durations: all of them, as for a mutant that survives."""
    print(f"{'module':16} {'mutants':>7} {'uncov':>5} {'stage 1 s':>10} {'stage 2 s':>10}")
    rows: dict[str, list[float]] = {}
    for mutant in mutants:
        selection = coverage.select(mutant, thorough=thorough)
        row = rows.setdefault(mutant.module, [0, 0, 0.0, 0.0])
        row[0] += 1
        row[1] += not selection.first and not selection.second
        first, second = selection.first, selection.second
        if not thorough:
            first = _within_budget(first, coverage, budget)
            second = _within_budget(second, coverage, budget)
        row[2] += sum(coverage.durations.get(t, 0.0) for t in first)
        row[3] += sum(coverage.durations.get(t, 0.0) for t in second)
    for module, (count, uncovered, first_s, second_s) in rows.items():
        print(f"{module + '.py':16} {count:7.0f} {uncovered:5.0f} {first_s:10.0f} {second_s:10.0f}")


# Report -----------------------------------------------------------------------------------


def _module_scores(
    mutants: list[Mutant], outcomes: dict[str, Outcome], equivalents: dict[str, str]
) -> dict[str, dict[str, Any]]:
    scores: dict[str, dict[str, Any]] = {}
    for mutant in mutants:
        score = scores.setdefault(
            mutant.module,
            {"total": 0, "killed": 0, "survived": 0, "uncovered": 0, "equivalent": 0},
        )
        outcome = outcomes[mutant.ident]
        score["total"] += 1
        if outcome.status == "killed":
            score["killed"] += 1
        elif mutant.ident in equivalents:
            score["equivalent"] += 1
        else:
            score[outcome.status] += 1
    for score in scores.values():
        non_equivalent = score["total"] - score["equivalent"]
        score["score"] = score["killed"] / score["total"] if score["total"] else 1.0
        score["score_non_equivalent"] = score["killed"] / non_equivalent if non_equivalent else 1.0
    return scores


def _describe(mutant: Mutant, outcome: Outcome) -> str:
    if outcome.status == "uncovered":
        how = "no test executes it"
    elif outcome.status == "equivalent":
        how = "listed as equivalent, not run"
    else:
        how = f"survived {outcome.tests} tests"
        if outcome.deferred:
            how += f", {outcome.deferred} more left to --thorough"
    return (
        f"  clientdedupe/{mutant.module}.py:{mutant.lineno} [{mutant.operator}] in "
        f"{mutant.qualname}: {how}\n"
        f"      - {mutant.original_text}\n"
        f"      + {mutant.mutated_text}\n"
        f"      id {mutant.ident}"
    )


def report(
    mutants: list[Mutant],
    outcomes: dict[str, Outcome],
    equivalents: dict[str, str],
    coverage: Coverage,
    run: dict[str, Any],
    path: Path,
) -> None:
    scores = _module_scores(mutants, outcomes, equivalents)
    print()
    header = f"{'module':16} {'mutants':>7} {'killed':>6} {'equiv':>5} {'surv':>5} {'uncov':>5}"
    print(f"{header} {'killed/all':>10} {'killed/non-eq':>13}")
    totals = {"total": 0, "killed": 0, "survived": 0, "uncovered": 0, "equivalent": 0}
    for module, score in scores.items():
        for name in totals:
            totals[name] += score[name]
        print(
            f"{module + '.py':16} {score['total']:7} {score['killed']:6} {score['equivalent']:5}"
            f" {score['survived']:5} {score['uncovered']:5} {score['score']:10.1%}"
            f" {score['score_non_equivalent']:13.1%}"
        )
    non_equivalent = totals["total"] - totals["equivalent"]
    print(
        f"{'all':16} {totals['total']:7} {totals['killed']:6} {totals['equivalent']:5}"
        f" {totals['survived']:5} {totals['uncovered']:5}"
        f" {totals['killed'] / max(totals['total'], 1):10.1%}"
        f" {totals['killed'] / max(non_equivalent, 1):13.1%}"
    )
    survivors = [
        m
        for m in mutants
        if outcomes[m.ident].status in ("survived", "uncovered") and m.ident not in equivalents
    ]
    if survivors:
        print(f"\nSurvivors not listed in tools/mutants-equivalent.txt ({len(survivors)}):")
    for mutant in survivors:
        print(_describe(mutant, outcomes[mutant.ident]))
    for mutant in mutants:
        if mutant.ident in equivalents and outcomes[mutant.ident].status == "killed":
            print(f"  listed as equivalent, but killed: {mutant.ident}")
    known = {m.ident for m in mutants}
    stale = sorted(set(equivalents) - known) if len(run["modules"]) == len(CORE_MODULES) else []
    for ident in stale:
        print(f"  listed as equivalent, no such mutant now: {ident}")
    cpu = sum(o.cpu_seconds for o in outcomes.values())
    print(
        f"\n{len(mutants)} mutants in {run['seconds'] / 60:.1f} min"
        f" (coverage {coverage.seconds / 60:.1f} min; mutants' CPU time {cpu / 60:.1f} min;"
        f" load average {run['load_average']:.1f} on {os.cpu_count()} CPUs)"
    )
    data = {
        **run,
        "coverage_seconds": round(coverage.seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "baseline_failures": coverage.failing,
        "modules": scores,
        "stale_equivalents": stale,
        "mutants": [
            {
                "id": m.ident,
                "file": f"clientdedupe/{m.module}.py",
                "line": m.lineno,
                "operator": m.operator,
                "qualname": m.qualname,
                "original": m.original_text,
                "mutated": m.mutated_text,
                "listed_equivalent": equivalents.get(m.ident),
                **dataclasses.asdict(outcomes[m.ident]),
            }
            for m in mutants
        ],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"report: {path}")


class LoadSampler:
    """The machine's load average while the run lasts: timings mean little without it."""

    def __init__(self) -> None:
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            self._samples.append(os.getloadavg()[0])
            if self._stop.wait(30):
                return

    def mean(self) -> float:
        self._stop.set()
        return sum(self._samples) / max(len(self._samples), 1)


# Main -------------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="docs/mutation-testing.md explains the run and how equivalents are recorded.",
    )
    parser.add_argument("--modules", nargs="+", choices=CORE_MODULES, default=list(CORE_MODULES))
    parser.add_argument("--operators", nargs="+", choices=OPERATORS, default=list(OPERATORS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the workers' virtualenvs"
    )
    parser.add_argument(
        "--thorough",
        action="store_true",
        help="run every test that executes a surviving mutant's lines: each parametrization,"
        " the subprocess tests and the slowest tests too (hours, not one)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=STAGE_BUDGET,
        metavar="SECONDS",
        help="per stage of a mutant, the (traced) baseline seconds of the tests run before"
        f" the rest are left to --thorough (default {STAGE_BUDGET:.0f}; lower: a quicker,"
        " rougher run)",
    )
    parser.add_argument(
        "--check-equivalent",
        action="store_true",
        help="run the mutants listed as equivalent too, to check the claims",
    )
    parser.add_argument(
        "--rerun",
        type=Path,
        metavar="REPORT",
        help="only the survivors of an earlier report (e.g. with --thorough)",
    )
    parser.add_argument("--match", help="only the mutants whose id contains this")
    parser.add_argument(
        "--tests",
        nargs="+",
        default=list(TEST_PATHS),
        help="the tests to select from (default: the unit tests, as noxfile.py's unit cells)",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=list(TEST_IGNORES),
        help="a test path never selected (added to the defaults, noxfile.py's unit cells')",
    )
    parser.add_argument(
        "--coverage-file",
        type=Path,
        help="read the coverage from this file if it exists, else measure and write it there"
        " (to repeat a run quickly: stale as soon as a test or a core module changes)",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="measure the coverage, print what each module's mutants would cost, and stop",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--keep", action="store_true", help="keep the workers' directory")
    parser.add_argument(
        "--report", type=Path, help="the JSON report (default: tools/mutants-report.json)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    here = Path(__file__).resolve().parent
    repo = here.parent
    started = time.monotonic()
    load = LoadSampler()
    sources = {
        module: (repo / "clientdedupe" / f"{module}.py").read_text(encoding="utf-8")
        for module in options.modules
    }
    mutants = generate(sources, options.operators)
    if options.match:
        mutants = [m for m in mutants if options.match in m.ident]
    if options.rerun:
        earlier = json.loads(options.rerun.read_text(encoding="utf-8"))
        again = {m["id"] for m in earlier["mutants"] if m["status"] == "survived"}
        mutants = [m for m in mutants if m.ident in again]
    equivalents = load_equivalents(here / "mutants-equivalent.txt")
    if options.list:
        for mutant in mutants:
            mark = "  (listed as equivalent)" if mutant.ident in equivalents else ""
            print(
                f"clientdedupe/{mutant.module}.py:{mutant.lineno} [{mutant.operator}] "
                f"{mutant.mutated_text}\n    {mutant.ident}{mark}"
            )
        print(f"{len(mutants)} mutants")
        return 0
    print(f"{len(mutants)} mutants of {', '.join(options.modules)}")
    if options.plan and options.coverage_file is not None and options.coverage_file.exists():
        plan(
            mutants,
            Coverage.load(options.coverage_file),
            thorough=options.thorough,
            budget=options.budget,
        )
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="clientdedupe-mutants-"))
    files = _source_files(repo)
    workers = [Worker(i, workdir, repo, files) for i in range(options.workers)]
    try:
        print(f"preparing {len(workers)} workers in {workdir}")
        _in_parallel(lambda worker: worker.prepare(options.python), workers)
        for worker in workers:
            worker.start()
        for worker in workers:
            for module, text in sources.items():
                copied = (worker.root / "clientdedupe" / f"{module}.py").read_text("utf-8")
                if copied != text:
                    raise SystemExit(f"{module}.py changed while it was being copied: run again")
        if options.coverage_file is not None and options.coverage_file.exists():
            coverage = Coverage.load(options.coverage_file)
        else:
            print("coverage and baseline: the unit tests, traced")
            coverage = measure_coverage(workers, options.modules, options.tests, options.ignore)
            if options.coverage_file is not None:
                coverage.save(options.coverage_file)
        print(f"  {coverage.seconds / 60:.1f} min, {len(coverage.passing)} tests passed")
        for test, outcome in sorted(coverage.failing.items()):
            print(f"  baseline: {test} {outcome}: never selected")
        if options.plan:
            plan(mutants, coverage, thorough=options.thorough, budget=options.budget)
            return 0
        skip = set() if options.check_equivalent else set(equivalents)
        outcomes = run_all(
            workers,
            mutants,
            sources,
            coverage,
            skip=skip,
            thorough=options.thorough,
            budget=options.budget,
        )
    finally:
        for worker in workers:
            worker.stop()
        if options.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    run = {
        "seconds": round(time.monotonic() - started, 1),
        "load_average": round(load.mean(), 2),
        "cpus": os.cpu_count(),
        "workers": options.workers,
        "thorough": options.thorough,
        "budget": options.budget,
        "modules": options.modules,
    }
    report_path = options.report or here / "mutants-report.json"
    report(mutants, outcomes, equivalents, coverage, run, report_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
