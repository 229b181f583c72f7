"""rnnkit's import graph: the library never imports the CLI, and no module imports itself
through others (no circles).

Every module under ``rnnkit/`` is parsed with `ast`; every ``import`` counts, at module level
and inside functions alike (an import moved into a function to dodge a circle still runs, so
the circle is still there). ``from package import name`` is an arrow to ``package.name`` when
that is a module, else to ``package`` itself. Importing ``a.b`` also runs ``a/__init__``; that
implicit arrow is not counted, or every package would be a circle with its own modules.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "rnnkit"

# Circles that remain, each one strongly connected component, exactly; the test fails when a
# new one appears AND when one of these disappears or changes, so that this list only shrinks.
# Empty since CLIError moved to cli/checks.py (the CLI modules no longer import cli/main.py).
ALLOWED_CYCLES: set[frozenset[str]] = set()

# Library modules that still import rnnkit.cli (lm/stream_cli.py reads the CLI's argument
# checks; the lm/ and cli/ work of this session moves it). Same rule: it only shrinks.
ALLOWED_CLI_IMPORTERS = {"rnnkit.lm.stream_cli"}

# ``python -m rnnkit`` is the command line's entry point: it runs rnnkit.cli by definition.
CLI_ENTRY_POINTS = {"rnnkit.__main__"}


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package __init__)}`` for every module under rnnkit/."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


@functools.lru_cache(maxsize=1)  # parsed once for the three tests
def _graph() -> dict[str, dict[str, int]]:
    """``{module: {module it imports: line of the first such import}}`` within rnnkit."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        arrows: dict[str, int] = {}

        def arrow(target: str, line: int) -> None:
            while target not in modules and "." in target:  # `import rnnkit.a.b.attr` style
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                arrows.setdefault(target, line)

        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "rnnkit":
                        arrow(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != "rnnkit":
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    arrow(sub if sub in modules else base, node.lineno)
        graph[name] = arrows
    return graph


def _components(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _one_cycle(graph: dict[str, dict[str, int]], component: frozenset[str]) -> str:
    """A shortest circle through the component's first module, as ``a (line n) -> b ... -> a``."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = paths[v] + [start]
                    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:])) + f" -> {start}"
                if w in component and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle found through {start}")  # pragma: no cover - a component has one


def test_the_parser_sees_function_level_and_relative_imports():
    graph = _graph()
    # module level, relative: models/sequential.py `from .model import Model`
    assert "rnnkit.models.model" in graph["rnnkit.models.sequential"]
    # inside a function: Model.save's `from ..saving.native import save_model`
    assert "rnnkit.saving.native" in graph["rnnkit.models.model"]
    # `from package import submodule` is an arrow to the submodule
    assert "rnnkit.training.losses" in graph["rnnkit.training"]


def test_the_library_never_imports_the_cli():
    graph = _graph()
    importers = {name for name, arrows in graph.items()
                 if not name.startswith("rnnkit.cli") and name not in CLI_ENTRY_POINTS
                 and any(t == "rnnkit.cli" or t.startswith("rnnkit.cli.") for t in arrows)}
    new = sorted(importers - ALLOWED_CLI_IMPORTERS)
    assert not new, "library modules import rnnkit.cli: " + "; ".join(
        f"{n} -> {t} (line {line})" for n in new for t, line in graph[n].items() if t.startswith("rnnkit.cli"))
    gone = sorted(ALLOWED_CLI_IMPORTERS - importers)
    assert not gone, f"no longer import rnnkit.cli, so delete them from ALLOWED_CLI_IMPORTERS: {gone}"


def test_no_import_circles():
    graph = _graph()
    components = set(_components(graph))
    new = [c for c in components if c not in ALLOWED_CYCLES]
    assert not new, "import circles: " + "\n".join(
        f"{sorted(c)}\n    e.g. {_one_cycle(graph, c)}" for c in sorted(new, key=sorted))
    gone = [sorted(c) for c in ALLOWED_CYCLES - components]
    assert not gone, f"these allowed circles are gone or changed, so update ALLOWED_CYCLES: {gone}"
