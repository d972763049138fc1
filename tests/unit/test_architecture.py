"""Layering, public API and SQL files: the architecture stays visible and enforced.

Two views of the imports are kept. The rules between packages count *every* import: under ``if
TYPE_CHECKING:``, inside functions, at module level; an import that only the type checker or a late
call sees still ties two packages together, and hiding a cycle behind one does not untangle it. The
rule on what ``storage.protocol`` loads at run time uses the runtime view (everything but
``TYPE_CHECKING`` blocks).

A package node is a subpackage of ``hivemind_jobs`` (``client``, ``storage``...) or a top-level
module (``errors``, ``hive``, ``environment``, ``sync``...); ``hivemind_jobs`` itself (the public
API in ``__init__``) is a node of its own.
"""

from __future__ import annotations

import ast
import asyncio
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import hivemind_jobs

PACKAGE_ROOT = Path(hivemind_jobs.__file__).parent
ROOT = "hivemind_jobs"
BACKENDS = ("hivemind_jobs.storage.sqlite", "hivemind_jobs.storage.postgres", "hivemind_jobs.storage.mysql")


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


PATHS = {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


@dataclass(frozen=True, order=True)
class Import:
    """One module of ours named by an import statement."""

    line: int
    module: str
    type_checking: bool  # under ``if TYPE_CHECKING:`` (the type checker sees it, the interpreter not)
    local: bool  # inside a function (runs when the function is called)

    def describe(self) -> str:
        how = " (TYPE_CHECKING)" if self.type_checking else " (in a function)" if self.local else ""
        return f"line {self.line}: {self.module}{how}"


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _scan_imports(path: Path) -> list[Import]:
    """Every import of one of our modules in ``path``, wherever it stands, in line order.

    ``from hivemind_jobs.client import jobs`` names the module ``hivemind_jobs.client.jobs``;
    ``from hivemind_jobs.client import JobContext`` names the package ``hivemind_jobs.client``.
    """
    found: set[Import] = set()  # ``from m import a, b`` names ``m`` once

    def add(module: str, line: int, type_checking: bool, local: bool) -> None:
        if module == ROOT or module.startswith(ROOT + "."):
            found.add(Import(line, module, type_checking, local))

    def visit(node: ast.AST, type_checking: bool, local: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True, local)
            for child in node.orelse:
                visit(child, type_checking, local)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                add(submodule if submodule in PATHS else node.module, node.lineno, type_checking, local)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno, type_checking, local)
        inner = local or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for nested in ast.iter_child_nodes(node):
            visit(nested, type_checking, inner)

    visit(ast.parse(path.read_text("utf-8")), False, False)
    return sorted(found)


IMPORTS = {name: _scan_imports(path) for name, path in PATHS.items()}
#: every import of ours, per module (the layering rules)
ALL_IMPORTS = {name: {item.module for item in items} for name, items in IMPORTS.items()}
#: the imports that run (``TYPE_CHECKING`` blocks left out; function-local imports counted)
MODULES = {name: {item.module for item in items if not item.type_checking} for name, items in IMPORTS.items()}


def _within(name: str, prefix: str) -> bool:
    """``name`` is the module ``prefix`` or inside it (component-wise: ``core`` is not ``corex``)."""
    return name == prefix or name.startswith(prefix + ".")


def _importers(prefix: str, imports: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: names for name, names in imports.items() if _within(name, prefix)}


def _offending(prefix: str, bad: Iterable[str] = (), *, allowed: Iterable[str] = ()) -> list[str]:
    """One line per import in a module under ``prefix`` that names a module under ``bad`` (or,
    given ``allowed``, outside every allowed prefix), with its line and kind."""
    forbidden = tuple(bad)
    permitted = tuple(allowed)
    found: list[str] = []
    for module, items in sorted(IMPORTS.items()):
        if not _within(module, prefix):
            continue
        for item in items:
            if forbidden:
                wrong = any(_within(item.module, name) for name in forbidden)
            else:
                wrong = not any(_within(item.module, name) for name in permitted)
            if wrong:
                found.append(f"{module} {item.describe()}")
    return found


def _report(rule: str, lines: list[str], what: str = "import") -> str:
    return f"{rule}; {len(lines)} {what}(s) break it:\n  " + "\n  ".join(lines)


# ------------------------------------------------------------------------------- older rules


def test_no_relative_imports() -> None:
    for path in PACKAGE_ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        relative = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
        assert not relative, f"{path}: relative imports at lines {relative}"


def test_core_imports_only_core_and_errors() -> None:
    offending = _offending("hivemind_jobs.core", allowed=("hivemind_jobs.core", "hivemind_jobs.errors"))
    assert not offending, _report("core/ imports only core and errors", offending)


def test_storage_protocol_imports_only_core() -> None:
    # at run time: the query package's condition and order types are named for the type checker only
    bad = {
        name
        for name in MODULES["hivemind_jobs.storage.protocol"]
        if not name.startswith(("hivemind_jobs.core", "hivemind_jobs.errors", "hivemind_jobs.storage.params"))
    }
    assert not bad


def test_mediator_is_generic() -> None:
    for module, imports in _importers("hivemind_jobs.mediator", ALL_IMPORTS).items():
        assert imports <= {"hivemind_jobs.errors", "hivemind_jobs.mediator.mediator"}, module


@pytest.mark.parametrize(
    "engine", ["client", "mediator", "middleware", "query", "colony", "recurring", "daemons", "lifecycle"]
)
def test_engine_packages_never_import_a_concrete_backend(engine: str) -> None:
    offending = _offending(f"hivemind_jobs.{engine}", BACKENDS)
    assert not offending, _report(f"{engine}/ never imports a concrete backend", offending)


# ------------------------------------------------------------------------------- package graph


def _node(module: str) -> str:
    """The package node of a module: ``hivemind_jobs.client.jobs`` -> ``client``,
    ``hivemind_jobs.hive`` -> ``hive``, ``hivemind_jobs`` -> ``hivemind_jobs``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _package_edges() -> dict[tuple[str, str], list[str]]:
    """(importing node, imported node) -> the imports that make the edge, by module and line."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, items in sorted(IMPORTS.items()):
        for item in items:
            source, target = _node(module), _node(item.module)
            if source != target:
                edges.setdefault((source, target), []).append(f"{module} {item.describe()}")
    return edges


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of ``graph`` with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def _shortest_cycle(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """The shortest path ``start -> ... -> start`` inside ``members`` (breadth first)."""
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph.get(node, set()) & members):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if target not in parents:
                parents[target] = node
                queue.append(target)
    raise AssertionError(f"{start} is on no cycle")


def test_no_import_cycle_between_packages() -> None:
    edges = _package_edges()
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
    problems: list[str] = []
    for component in _strongly_connected(graph):
        members = set(component)
        cycle = _shortest_cycle(graph, component[0], members)
        lines = [f"packages {', '.join(component)} import each other; one cycle: {' -> '.join(cycle)}"]
        for source, target in itertools.pairwise(cycle):
            lines.append(f"  {source} -> {target}:")
            lines.extend(f"    {item}" for item in edges[(source, target)])
        inner = sorted((source, target) for source, target in edges if source in members and target in members)
        lines.append("  every edge between these packages:")
        lines.extend(f"    {source} -> {target} ({len(edges[(source, target)])} import(s))" for source, target in inner)
        problems.append("\n".join(lines))
    assert not problems, "import cycles between packages (TYPE_CHECKING and function-local imports count):\n" + (
        "\n".join(problems)
    )


def _private_owner(module: str) -> str | None:
    """For a private module (a component starting with ``_``, dunders aside), the package it is
    private to: everything before its first private component."""
    parts = module.split(".")
    for position, part in enumerate(parts):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return ".".join(parts[:position])
    return None


def test_no_module_imports_another_packages_private_module() -> None:
    offending = [
        f"{module} {item.describe()}, private to {owner}"
        for module, items in sorted(IMPORTS.items())
        for item in items
        if (owner := _private_owner(item.module)) is not None and not _within(module, owner)
    ]
    assert not offending, _report("a private module is imported only inside its own package", offending)


LIFECYCLE_MAY_IMPORT = (
    "hivemind_jobs.lifecycle",
    "hivemind_jobs.core",
    "hivemind_jobs.errors",
    "hivemind_jobs.mediator",
    "hivemind_jobs.storage.protocol",
    "hivemind_jobs.storage.params",
)


def test_lifecycle_imports_only_core_errors_mediator_and_the_storage_protocol() -> None:
    assert _importers("hivemind_jobs.lifecycle", ALL_IMPORTS), "there is no lifecycle package"
    offending = _offending("hivemind_jobs.lifecycle", allowed=LIFECYCLE_MAY_IMPORT)
    assert not offending, _report(
        "lifecycle/ imports only " + ", ".join(name.removeprefix("hivemind_jobs.") for name in LIFECYCLE_MAY_IMPORT),
        offending,
    )


def _background_job_private_methods() -> set[str]:
    tree = ast.parse(PATHS["hivemind_jobs.core.job"].read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "BackgroundJob":
            return {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and item.name.startswith("_")
                and not item.name.endswith("__")
            }
    raise AssertionError("no class BackgroundJob in core/job.py")


def _private_uses(tree: ast.Module, names: set[str]) -> Iterator[tuple[int, str]]:
    """``x._name`` attribute uses of ``names`` in ``tree``; ``self._name`` inside a class that
    defines its own ``_name`` is that class's method, not BackgroundJob's."""

    def visit(node: ast.AST, own: frozenset[str]) -> Iterator[tuple[int, str]]:
        if isinstance(node, ast.ClassDef):
            own = frozenset(item.name for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef))
        if isinstance(node, ast.Attribute) and node.attr in names:
            receiver = node.value
            is_own = isinstance(receiver, ast.Name) and receiver.id in {"self", "cls"} and node.attr in own
            if not is_own:
                yield node.lineno, f"{ast.unparse(receiver)}.{node.attr}"
        for child in ast.iter_child_nodes(node):
            yield from visit(child, own)

    yield from visit(tree, frozenset())


def test_only_lifecycle_calls_background_job_private_methods() -> None:
    names = _background_job_private_methods()
    assert names, "BackgroundJob has no underscore methods: this rule checks nothing"
    offending = [
        f"{module} line {line}: {use}"
        for module, path in sorted(PATHS.items())
        if module != "hivemind_jobs.core.job" and not _within(module, "hivemind_jobs.lifecycle")
        for line, use in sorted(_private_uses(ast.parse(path.read_text("utf-8")), names))
    ]
    assert not offending, _report(
        f"only core/job.py and lifecycle/ call BackgroundJob's {', '.join(sorted(names))}", offending, "use"
    )


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("query", "storage"),
        ("daemons", "colony"),
        ("colony", "hive"),
    ],
)
def test_package_never_imports(importer: str, forbidden: str) -> None:
    offending = _offending(f"hivemind_jobs.{importer}", [f"hivemind_jobs.{forbidden}"])
    assert not offending, _report(f"{importer}/ never imports {forbidden}", offending)


# ------------------------------------------------------------------------------- public API


def test_public_api_is_sorted_complete_and_importable() -> None:
    exported = hivemind_jobs.__all__
    # constants, then classes, then the rest; each alphabetically (the order ruff keeps)
    assert list(exported) == sorted(
        exported, key=lambda name: (0 if name.isupper() else 1 if name[0].isupper() else 2, name)
    )
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(hivemind_jobs, name), name
    public = {name for name in vars(hivemind_jobs) if not name.startswith("_") and name[0].isupper()}
    missing = public - set(exported)
    assert not missing, f"public names not in __all__: {missing}"


def test_every_exported_error_is_a_hivemind_error() -> None:
    """``except HiveMindError`` catches everything the library raises on purpose, including the
    cancellation a running job sees."""
    errors = [
        value
        for value in vars(hivemind_jobs).values()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__.startswith(ROOT)
    ]
    assert hivemind_jobs.JobCancelled in errors
    outside = sorted(error.__qualname__ for error in errors if not issubclass(error, hivemind_jobs.HiveMindError))
    assert not outside, f"exported errors outside HiveMindError: {outside}"


def test_job_cancelled_is_a_hivemind_error_and_an_ordinary_exception() -> None:
    """A job's ``except HiveMindError`` catches it; the worker's ``except Exception`` still does,
    and asyncio's own cancellation stays a different thing."""
    error = hivemind_jobs.JobCancelled("job 1 was asked to stop")
    assert isinstance(error, hivemind_jobs.HiveMindError)
    assert isinstance(error, Exception)
    assert not isinstance(error, asyncio.CancelledError)
