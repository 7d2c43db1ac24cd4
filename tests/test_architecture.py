"""The package's layout holds: modules import one way (no circles, even lazy or type-only ones)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str = "sfumato") -> dict[str, set[str]]:
    """Every module's imports of the package's own modules, wherever they are written (lazy included).

    ``from a.b import c`` counts as an import of ``a.b.c`` when that is a module, else of ``a.b``.
    """
    modules = {_module_name(p): p for p in (SRC / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    target = sub if sub in modules else node.module
                    if target in modules:
                        edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_sees_a_circle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "sfumato.lab.poison.experiment" in graph
    assert find_cycles(graph) == []


def test_the_lab_is_in_rooms() -> None:
    """The lab's top level holds only its shared machinery; everything else lives in a room."""
    lab = SRC / "sfumato" / "lab"
    rooms = {p.name for p in lab.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {"data", "models", "judging", "poison", "mimicry", "robustness"} <= rooms
    top = {p.stem for p in lab.glob("*.py")}
    assert top == {"__init__", "cli", "figures", "finetune_runs", "merging", "storage"}
