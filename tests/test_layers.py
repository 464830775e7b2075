"""The import graph of `framework/`: no cycles, and every layer imports only downward.

Read from the source with `ast`, not by importing: imports at module level, inside functions and
inside `if TYPE_CHECKING:` blocks all count (a lazy import hides a dependency, it does not remove
it). Relative imports are resolved; `from framework.x import y` where `y` is a submodule is an
edge to `framework.x.y` (a package run only as the parent of what is imported is not an edge).

Layers, lowest first (a module may import from its own layer or lower):

  0  framework.errors, events, model, logs, latency
  1  framework.venue                         (the contract)
  2  framework.transport.*, framework.data.*
  3  framework.execution.*, framework.risk, framework.portfolio
  4  framework.strategy, framework.config, framework.core, framework.engine
  4.5 framework.distributed.*                (gateway and remote strategies over Redis)
  5  framework.sim.*
  6  framework.venues.*
  7  framework.tools.*, framework.testing.*

`framework` itself (the public face, framework/__init__.py) may import anything; nothing below
layer 7 imports it except as the parent package of what it imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "framework"

# exact module -> layer; a prefix "framework.x." covers the package framework.x and all below it
LAYERS: list[tuple[float, tuple[str, ...]]] = [
    (
        0,
        (
            "framework.errors",
            "framework.events",
            "framework.model",
            "framework.logs",
            "framework.latency",
        ),
    ),
    (1, ("framework.venue",)),
    (2, ("framework.transport.*", "framework.data.*")),
    (3, ("framework.execution.*", "framework.risk", "framework.portfolio")),
    (4, ("framework.strategy", "framework.config", "framework.core", "framework.engine")),
    # over the engine (a gateway composes one), under the tools: strategies and gateways on a bus
    (4.5, ("framework.distributed.*",)),
    (5, ("framework.sim.*",)),
    (6, ("framework.venues.*",)),
    (7, ("framework.tools.*", "framework.testing.*")),
]
TOP = 7  # tools and the test kit: they may import the public face `framework` too
CORE_MAX = 4  # layers 0-4: the core
OUTSIDE_CORE = ("framework.venues", "framework.tools", "framework.testing", "framework.sim")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def layer_of(module: str) -> float | None:
    """The layer of a framework module; None for the public face `framework`."""
    for layer, patterns in LAYERS:
        for pattern in patterns:
            if pattern.endswith(".*"):
                package = pattern[:-2]
                if module == package or module.startswith(package + "."):
                    return layer
            elif module == pattern:
                return layer
    if module == "framework":
        return None
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]  # a module's relative imports start from its package
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported framework module, line) for every import statement anywhere in the file.

    The packages above an imported module run too, but as parents only: they are not edges
    (or every submodule of a package whose `__init__` imports its submodules would be a cycle).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_framework(alias.name):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            else:
                base = node.module or ""
            if not _is_framework(base):
                continue
            names_only = False
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # `from framework.x import y` with y a submodule
                    yield sub, node.lineno
                else:
                    names_only = True
            if names_only:  # a name defined in `base` itself
                yield base, node.lineno


def _is_framework(name: str) -> bool:
    return name == "framework" or name.startswith("framework.")


# edges: importer -> {imported: first line}
GRAPH: dict[str, dict[str, int]] = {}
for _name, _path in MODULES.items():
    edges = GRAPH.setdefault(_name, {})
    for _target, _line in imports_of(_name, _path):
        if _target != _name:
            edges.setdefault(_target, _line)


def where(importer: str, imported: str) -> str:
    path = MODULES[importer]
    if path.is_relative_to(ROOT):
        path = path.relative_to(ROOT)
    return f"{path}:{GRAPH[importer][imported]}: {importer} -> {imported}"


def find_cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return [_one_cycle(c) for c in components]


def _one_cycle(component: list[str]) -> list[str]:
    """A concrete cycle through the component's first module (breadth-first back to it)."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(GRAPH[node]):
                if nxt == start:
                    return [*paths[node], start]
                if nxt in members and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle through {start}")


def test_the_graph_sees_imports_in_functions_type_checking_and_relative_forms(
    tmp_path: Path,
) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import book\n"
        "from ..errors import FrameError\n"
        "if TYPE_CHECKING:\n"
        "    from framework.venue import Stream\n"
        "def f():\n"
        "    import framework.sim.server\n"
        "    from framework import engine\n"
    )
    path = tmp_path / "bus.py"
    path.write_text(source)
    found = {name for name, _ in imports_of("framework.data.bus", path)}
    assert {
        "framework.data.book",
        "framework.errors",
        "framework.venue",
        "framework.sim.server",
        "framework.engine",
    } <= found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_import_cycle_among_framework_modules() -> None:
    cycles = find_cycles()
    report = []
    for cycle in cycles:
        report.append(" -> ".join(cycle))
        report += [f"    {where(a, b)}" for a, b in pairwise(cycle)]
    assert not cycles, "import cycles:\n" + "\n".join(report)


def _upward_edges() -> list[str]:
    bad = []
    for importer, edges in sorted(GRAPH.items()):
        mine = layer_of(importer)
        if mine is None:
            continue  # the public face may import anything
        for imported in sorted(edges):
            theirs = layer_of(imported)
            if theirs is None:
                if mine == TOP:
                    continue  # the tools and the test kit may use the public face
                bad.append(f"{where(importer, imported)} (only the public face imports it)")
            elif theirs > mine:
                bad.append(f"{where(importer, imported)} (layer {mine} -> layer {theirs})")
    return bad


def test_layers_import_only_downward() -> None:
    bad = _upward_edges()
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_the_core_names_no_venue_tool_test_kit_or_simulator() -> None:
    bad = []
    for importer, edges in sorted(GRAPH.items()):
        mine = layer_of(importer)
        if mine is None or mine > CORE_MAX:
            continue
        for imported in sorted(edges):
            if any(imported == p or imported.startswith(p + ".") for p in OUTSIDE_CORE):
                bad.append(where(importer, imported))
    assert not bad, "the core imports what sits on top of it:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "edge"),
    [
        ("from framework.tools import cli\n", "framework.tools.cli"),
        ("def f():\n    import framework.venues.paxos\n", "framework.venues.paxos"),
    ],
)
def test_an_upward_import_is_caught(
    source: str, edge: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "risk.py"
    path.write_text(source)
    monkeypatch.setitem(MODULES, "framework.risk", path)
    monkeypatch.setitem(GRAPH, "framework.risk", dict(imports_of("framework.risk", path)))
    assert any(f"framework.risk -> {edge}" in line for line in _upward_edges())
