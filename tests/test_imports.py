"""The import graph of ``src/amsgrad_repro``: no circles, and no import hidden in a function
unless it keeps a heavy library out of start-up.

The Snakemake process imports the configuration and plan code at parse time, and every CLI
command parses its arguments before it runs, so a module that needs torch, numba, plotting
or pandas may be imported inside the function that uses it (with a comment saying why).
Any other import inside a function hides an edge of the graph, which is how circles were
held apart before; so the graph here counts imports at every level, and a circle among
modules (or among the subpackages) fails the test.
"""

from __future__ import annotations

import ast
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "amsgrad_repro"
# Third-party libraries slow (or, for torch and numba, seconds) to import: start-up may
# defer them, and a module of the package that imports one at its top may be deferred too.
HEAVY = frozenset(
    {
        "torch",
        "torchvision",
        "numba",
        "matplotlib",
        "seaborn",
        "PIL",
        "scipy",
        "pandas",
        "snakemake",
    }
)


@dataclass(frozen=True)
class Import:
    """One imported module: ``target`` is a module of the package (``amsgrad_repro.x.y``)
    or a third-party or standard library's top-level name."""

    source: str
    target: str
    line: int
    in_function: bool
    commented: bool  # a comment on the statement's lines or a comment line right above


def _modules(package: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _targets(node: ast.Import | ast.ImportFrom, source: str, path: Path, modules) -> list[str]:
    internal = source.split(".")[0]
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
        if node.level:
            base = base[: len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        names = [
            f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names
        ]
    return sorted({n if n.split(".")[0] == internal else n.split(".")[0] for n in names})


def imports_of(source: str, path: Path, modules: Mapping[str, Path]) -> list[Import]:
    """Every import statement of one module, with whether it sits inside a function
    (imports under ``if TYPE_CHECKING:`` never run and are left out)."""
    text = path.read_text()
    lines = text.splitlines()
    found: list[Import] = []

    def commented(node: ast.stmt) -> bool:
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        span = lines[node.lineno - 1 : node.end_lineno]
        return above.startswith("#") or any("#" in line for line in span)

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, source, path, modules):
                    found.append(
                        Import(source, target, child.lineno, in_function, commented(child))
                    )
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inner)

    visit(ast.parse(text), False)
    return found


def package_imports(package: Path = PACKAGE) -> list[Import]:
    modules = _modules(package)
    return [item for name, path in modules.items() for item in imports_of(name, path, modules)]


def circles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(edges):
        if node not in index:
            connect(node)
    return sorted(found)


def internal_edges(imports: Iterable[Import], group=lambda name: name) -> dict[str, set[str]]:
    """source → targets among the package's modules, at every level, grouped by ``group``
    (a self-edge of a group is dropped)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for item in imports:
        if item.target.startswith(f"{PACKAGE.name}") and group(item.source) != group(item.target):
            edges[group(item.source)].add(group(item.target))
    return edges


def subpackage(module: str) -> str:
    """``amsgrad_repro.analysis.claims`` → ``amsgrad_repro.analysis``; a top-level module
    is its own group."""
    return ".".join(module.split(".")[:2])


def heavy_libraries(imports: Iterable[Import]) -> dict[str, set[str]]:
    """Per module of the package, the :data:`HEAVY` libraries its import loads (at module
    level, through the modules it imports and their packages' ``__init__``)."""
    top: dict[str, set[str]] = defaultdict(set)
    for item in imports:
        if not item.in_function:
            parts = item.target.split(".")
            top[item.source].update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    loads = {module: targets & HEAVY for module, targets in top.items()}
    changed = True
    while changed:
        changed = False
        for module, targets in top.items():
            found = set().union(*(loads.get(t, set()) for t in targets)) - loads[module]
            if found:
                loads[module] |= found
                changed = True
    return defaultdict(set, loads)


def deferred(item: Import, loads: Mapping[str, set[str]]) -> set[str]:
    """The heavy libraries an import inside a function keeps out of its module's import:
    those the target loads that the importing module does not load already."""
    target = {item.target} & HEAVY or loads[item.target]
    return target - loads[item.source]


def test_no_module_imports_another_in_a_circle():
    found = circles(internal_edges(package_imports()))
    assert not found, f"import circles among modules (imports inside functions count): {found}"


def test_no_subpackage_imports_another_in_a_circle():
    found = circles(internal_edges(package_imports(), subpackage))
    assert not found, f"import circles among subpackages: {found}"


def test_imports_inside_functions_only_defer_heavy_libraries():
    """Allowed inside a function: an import that keeps a :data:`HEAVY` library out of its
    module's import (one the module does not load anyway); of a module of the package only
    with a comment saying why it waits."""
    imports = package_imports()
    loads = heavy_libraries(imports)
    wrong = [
        f"{item.source}:{item.line} imports {item.target}"
        + ("" if deferred(item, loads) else " (defers no heavy library)")
        + ("" if item.commented or item.target in HEAVY else " (no comment)")
        for item in imports
        if item.in_function
        and not (deferred(item, loads) and (item.commented or item.target in HEAVY))
    ]
    assert not wrong, "imports inside functions that need not be there:\n" + "\n".join(wrong)


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "amsgrad_repro" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "amsgrad_repro"


def test_the_checks_find_a_circle_hidden_in_a_function(tmp_path):
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "",
            "a/one.py": "from amsgrad_repro.b import two\n",
            "b/__init__.py": "",
            "b/two.py": "import json\n\ndef f():\n    from amsgrad_repro.a import one\n",
            "b/three.py": "def g():\n    import torch  # heavy\n    from ..b import two\n",
            "c.py": "import pandas\n\ndef h():\n    from amsgrad_repro import c  # lazy: pandas\n",
        },
    )
    imports = package_imports(package)
    assert circles(internal_edges(imports)) == [["amsgrad_repro.a.one", "amsgrad_repro.b.two"]]
    assert circles(internal_edges(imports, subpackage)) == [["amsgrad_repro.a", "amsgrad_repro.b"]]
    inner = {(i.source, i.target, i.commented) for i in imports if i.in_function}
    assert inner == {
        ("amsgrad_repro.b.two", "amsgrad_repro.a.one", False),
        ("amsgrad_repro.b.three", "torch", True),
        ("amsgrad_repro.b.three", "amsgrad_repro.b.two", False),
        ("amsgrad_repro.c", "amsgrad_repro.c", True),
    }
    loads = heavy_libraries(imports)
    assert loads["amsgrad_repro.c"] == {"pandas"} and not loads["amsgrad_repro.b.three"]
    assert [deferred(i, loads) for i in imports if i.source.endswith("three")] == [{"torch"}, set()]
