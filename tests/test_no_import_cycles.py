"""No import cycles (issue 16): no module of the core (``nasd/``), of a plugin (``plugins/*/src/<package>``), of the
test harness (``testing/src/<package>``) or of an example plugin imports a module that imports it back, directly or
through others.

Every import statement counts, wherever it is: at the top, inside a function (a lazy import) or under
``if TYPE_CHECKING``. A lazy import hides a cycle from Python, not from the reader: the two modules still cannot
be understood (or moved) one without the other. The graph is read from the source with ``ast``; nothing is
imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

Edge = tuple[str, str]  # (importer, imported)

#: Cycles known when this test was written (not the Kubernetes plugin's: its plugin.py/source.py cycle is gone),
#: each allowed by the one import that closes it. Remove an entry once its cycle is gone (nothing fails when one
#: is stale); never add one: a new cycle is fixed, not listed.
KNOWN_CYCLES: dict[Edge, str] = {
    # the ZFS plugin's (its helper's, being edited as this was written): nasd_zfs.plan -> nasd_zfs.vdevs
    # -(TYPE_CHECKING)-> nasd_zfs.plan
    ("nasd_zfs.vdevs", "nasd_zfs.plan"): "plan_vdevs' annotation names ZfsObservation",
}


def package_roots(root: Path = ROOT) -> list[Path]:
    """The core's package, every plugin's, the test harness's and the examples' (any that exist)."""
    others = [p.parent for pattern in ("plugins/*/src/*/__init__.py", "testing/src/*/__init__.py",
                                       "examples/*/src/*/__init__.py") for p in root.glob(pattern)]
    return [root / "nasd", *sorted(others)]


def modules_of(package: Path) -> dict[str, Path]:
    """Module name -> file, for a package and its subpackages."""
    out: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules among ``modules`` that the module ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def known(dotted: str) -> str | None:  # the module itself, else the closest package that is one of ours
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(filter(None, (known(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import sub` imports the submodule pkg.sub
                hit = f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else known(target)
                if hit:
                    found.add(hit)
    found.discard(name)
    return found


def import_graph(roots: list[Path]) -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package in roots:
        modules.update(modules_of(package))
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another (strongly connected, more than one module), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

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
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def path_around(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """One way round a cycle, for the message: from the group's first module back to it."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return group


def without(graph: dict[str, set[str]], edges: set[Edge]) -> dict[str, set[str]]:
    return {v: {w for w in ws if (v, w) not in edges} for v, ws in graph.items()}


def test_no_module_of_the_core_or_of_a_plugin_imports_a_module_that_imports_it_back() -> None:
    graph = without(import_graph(package_roots()), set(KNOWN_CYCLES))
    found = [" -> ".join(path_around(graph, group)) for group in cycles(graph)]
    assert found == [], "import cycles (break each one; a shared name goes to a module both can import):\n" + \
        "\n".join(found)


def test_the_check_sees_a_cycle_closed_by_a_lazy_import_and_one_under_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "plugins" / "demo" / "src" / "nasd_demo"
    package.mkdir(parents=True)
    (tmp_path / "nasd").mkdir()
    (tmp_path / "nasd" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("from .names import NAME\n\ndef start():\n    from .source import Source\n")
    (package / "source.py").write_text("from nasd_demo.plugin import NAME\n")
    (package / "names.py").write_text("NAME = 'demo'\n")
    (package / "status.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                       "    from . import report\n")
    (package / "report.py").write_text("from .status import x\n")
    graph = import_graph(package_roots(tmp_path))
    assert cycles(graph) == [["nasd_demo.plugin", "nasd_demo.source"], ["nasd_demo.report", "nasd_demo.status"]]
    assert path_around(graph, ["nasd_demo.plugin", "nasd_demo.source"]) == \
        ["nasd_demo.plugin", "nasd_demo.source", "nasd_demo.plugin"]
    # the name moved to a module both import: no cycle left there
    (package / "source.py").write_text("from .names import NAME\n")
    assert cycles(import_graph(package_roots(tmp_path))) == [["nasd_demo.report", "nasd_demo.status"]]
