"""The package's import graph, read from the source (imports inside functions count too).

Arrows must point down (cli -> stages -> runners/compare/precision -> artifacts/...):
a cycle, even one closed only by a function-level import, means two modules that
cannot be understood or changed apart, and an import of ``resdeploy.cli`` from the
library means the library depends on its own command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import resdeploy

PACKAGE = Path(resdeploy.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The resdeploy module an imported name lives in (``resdeploy.a.b`` -> the longest module prefix)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the resdeploy modules it imports, at top level, inside functions or under TYPE_CHECKING.

    ``if TYPE_CHECKING:`` imports are left out: they never run, and mypy needs them.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for child in node.body for n in ast.walk(child))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # "from pkg import submodule" depends on the submodule (the package runs anyway, as
                # Python imports a parent first); "from module import name" depends on the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
                targets = [str(node.args[0].value)]
            for t in targets:
                if not t.startswith("resdeploy"):
                    continue
                # "from resdeploy.x import y": y may be a submodule, else it is an attribute of x
                found = t if t in modules else _resolve(t, modules)
                if found and found != mod and found != "resdeploy":
                    graph[mod].add(found)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_function_level_imports() -> None:
    graph = import_graph()
    # benchmark.bench imports machine inside a function: the walker must see it
    assert "resdeploy.machine" in graph["resdeploy.benchmark"]
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_no_import_cycles() -> None:
    assert find_cycles(import_graph()) == []


def test_only_the_cli_imports_the_cli() -> None:
    graph = import_graph()
    offenders = sorted(m for m, deps in graph.items() if not m.startswith("resdeploy.cli") and m != "resdeploy.__main__"
                       and any(d == "resdeploy.cli" or d.startswith("resdeploy.cli.") for d in deps))
    assert offenders == []
