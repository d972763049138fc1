"""Layering, public API and SQL files: the architecture stays visible and enforced."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hivemind_jobs

PACKAGE_ROOT = Path(hivemind_jobs.__file__).parent
BACKENDS = ("hivemind_jobs.storage.sqlite", "hivemind_jobs.storage.postgres", "hivemind_jobs.storage.mysql")


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of ours imported at run time (imports under ``if TYPE_CHECKING:`` do not count)."""
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name.startswith("hivemind_jobs")}


MODULES = {_module_name(path): _runtime_imports(path) for path in PACKAGE_ROOT.rglob("*.py")}


def _importers(prefix: str) -> dict[str, set[str]]:
    return {name: imports for name, imports in MODULES.items() if name == prefix or name.startswith(prefix + ".")}


def test_no_relative_imports() -> None:
    for path in PACKAGE_ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        relative = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
        assert not relative, f"{path}: relative imports at lines {relative}"


def test_core_imports_only_core_and_errors() -> None:
    for module, imports in _importers("hivemind_jobs.core").items():
        bad = {name for name in imports if not name.startswith(("hivemind_jobs.core", "hivemind_jobs.errors"))}
        assert not bad, f"{module} imports {bad}"


def test_storage_protocol_imports_only_core() -> None:
    bad = {
        name
        for name in MODULES["hivemind_jobs.storage.protocol"]
        if not name.startswith(("hivemind_jobs.core", "hivemind_jobs.errors"))
    }
    assert not bad


def test_mediator_is_generic() -> None:
    for module, imports in _importers("hivemind_jobs.mediator").items():
        assert imports <= {"hivemind_jobs.errors", "hivemind_jobs.mediator.mediator"}, module


@pytest.mark.parametrize("engine", ["client", "mediator", "middleware", "query", "colony", "recurring", "daemons"])
def test_engine_packages_never_import_a_concrete_backend(engine: str) -> None:
    for module, imports in _importers(f"hivemind_jobs.{engine}").items():
        bad = {name for name in imports if name.startswith(BACKENDS)}
        assert not bad, f"{module} imports backend {bad}"


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
