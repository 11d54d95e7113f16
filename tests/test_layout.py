"""The package layout: no import cycle between clientdedupe's modules (module-level,
function-level and type-checking imports alike), and the tools apart from the core."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "clientdedupe"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    graph[name].add(candidate if candidate in modules else target)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in getattr(node, "names", [])]
                graph[name].update(n for n in names if n and n in modules)
        graph[name].discard(name)
    return {name: {t for t in targets if t in modules} for name, targets in graph.items()}


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _imports()
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif len(path) < len(graph):
                visit(target, [*path, target])

    for name in graph:
        visit(name, [name])
    assert cycles == []


def test_the_core_never_imports_the_tools() -> None:
    graph = _imports()
    core = [name for name in graph if not name.startswith("clientdedupe._tools")]
    assert {name: sorted(t for t in graph[name] if "._tools" in t) for name in core} == {
        name: [] for name in core
    } | {"clientdedupe.__main__": ["clientdedupe._tools.cli"]}
