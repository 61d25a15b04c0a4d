"""The package's design, checked: layers import only downward, no import cycle, small modules.

The layers, bottom to top (a module may import its own layer and the layers below):

    errors, schema, datasets, and the shared helpers (threads, markdown, _version)
    → privacy → artifact → model → pool, evaluation → server → federation
    → experiments → cli

``evaluation`` is a library of metrics: besides the layer rule it imports neither
``model`` nor ``datasets``. Every module of the package is found by walking the source
tree, so new modules (e.g. federation's submodules) are checked without editing this file.
Imports under ``if TYPE_CHECKING:`` are for type checkers only and never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import threedgl

ROOT = Path(threedgl.__file__).parent
PACKAGE = "threedgl"

#: Layer of each top-level part of the package (a higher number is a higher layer).
LAYERS: dict[str, int] = {
    "_version": 0,
    "apportion": 0,
    "errors": 0,
    "threads": 0,
    "markdown": 0,
    "schema": 0,
    "datasets": 0,
    "privacy": 1,
    "artifact": 2,
    "model": 3,
    "pool": 4,
    "evaluation": 4,
    "server": 5,
    "federation": 6,
    "experiments": 7,
    "cli": 8,
    "__init__": 9,  # threedgl/__init__.py re-exports names lazily from the layers below
}
#: Parts a part must not import even though they are below it.
FORBIDDEN: dict[str, set[str]] = {"evaluation": {"model", "datasets"}}
MAX_LINES = 500
#: Modules exempt from the size rule (none: federation/simulation.py was split in issue 13).
SIZE_EXEMPT: set[str] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([PACKAGE, *parts])] = path
    return out


MODULES = _modules()


def _part(module: str) -> str:
    """The part a module belongs to. ``python -m threedgl.x`` entry points (``__main__``)
    belong to their part like any module: ``server/__main__`` importing the CLI was an
    upward import this test did not see (issue 20)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(base: str, name: str) -> str:
    """The module ``from base import name`` loads: the submodule ``base.name`` if there is
    one, else ``base``; the root package's ``__version__`` comes from ``_version`` (the
    root ``__init__`` imports it eagerly and everything else lazily)."""
    if base == PACKAGE and name == "__version__":
        return f"{PACKAGE}._version"
    sub = f"{base}.{name}"
    return sub if sub in MODULES else base


def _imported(module: str, path: Path, node: ast.AST) -> set[str]:
    """The modules one import statement loads (nothing for any other node)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if isinstance(node, ast.ImportFrom):
        base = _resolve(module, path, node)
        return {_target(base, alias.name) for alias in node.names}
    return set()


def _imports(module: str, path: Path) -> set[str]:
    """Every threedgl module ``module`` imports at run time (lazy imports in functions
    included, ``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        found.update(_imported(module, path, node))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_part_has_a_layer() -> None:
    parts = {_part(m) for m in MODULES}
    assert parts <= set(LAYERS), f"give these parts a layer: {sorted(parts - set(LAYERS))}"


def test_imports_go_downward_only() -> None:
    upward = []
    for module, targets in GRAPH.items():
        part = _part(module)
        for target in targets:
            other = _part(target)
            if other == part:
                continue
            if LAYERS[other] > LAYERS[part] or other in FORBIDDEN.get(part, set()):
                upward.append(f"{module} → {target}")
    assert not upward, "imports against the layer order:\n" + "\n".join(sorted(upward))


def _module_level_imports(module: str, path: Path) -> set[str]:
    """Module-level imports, ``if TYPE_CHECKING:`` blocks included: two modules that need
    each other's names, even only for types, are one design split in two (issue 20:
    ``schema.conform`` and ``schema.schema``). Function-level imports are left out (they
    run after both modules loaded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            nodes.extend(node.body)
        else:
            top.update(_imported(module, path, node))
    return top


def test_no_import_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        top = _module_level_imports(module, path)
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        edges[module] = {m for m in top if m in MODULES and m != module}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            dfs(module)
    # A package's __init__ importing its own submodules, which import the package's
    # siblings, is how Python packages work; a cycle between two real modules is not.
    real = [c for c in cycles if not any(MODULES[m].name == "__init__.py" for m in c[:-1])]
    assert not real, "import cycles:\n" + "\n".join(" → ".join(c) for c in real)


def test_the_checks_catch_what_they_should() -> None:
    """The walker sees a lazy import inside a function and skips TYPE_CHECKING blocks for
    the layers (not for cycles); an entry point is in its own part."""
    assert _part("threedgl.server.__main__") == "server"
    assert "threedgl.schema.columns" in _module_level_imports(
        "threedgl.schema.conform", MODULES["threedgl.schema.conform"])
    assert "threedgl.model.registry" in GRAPH["threedgl.pool.pool"]  # lazy, in from_files
    federation_paper = GRAPH["threedgl.experiments.tables"]
    assert "threedgl.federation.simulation" not in federation_paper  # TYPE_CHECKING only
    assert any(t.startswith("threedgl.experiments") for t in GRAPH["threedgl.cli.evaluate"])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_500_lines(module: str) -> None:
    path = MODULES[module]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    rel = path.relative_to(ROOT).as_posix()
    assert rel not in SIZE_EXEMPT
    assert lines <= MAX_LINES, f"{rel} has {lines} lines (at most {MAX_LINES})"
