"""Which operations of the storage ``Transaction`` protocol the conformance suite exercises.

An operation a backend implements but no conformance test calls can differ between backends
unnoticed, so a test insists that :func:`missing_operations` is empty. Operations are the public
methods declared on ``Transaction`` and on every protocol it is composed of; a module of the suite
exercises one when it calls it as a method (``tx.job_insert(...)``) anywhere in its source.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Iterable

from hivemind_jobs.storage.protocol import Transaction

__all__ = ["called_methods", "missing_operations", "protocol_operations", "suite_sources"]

_PACKAGE = "hivemind_jobs.testing.conformance"


def protocol_operations(protocol: type = Transaction) -> frozenset[str]:
    """The public methods of ``protocol`` and of the protocols it is composed of (properties,
    such as ``finished``, are state rather than operations)."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or cls.__module__ == typing.__name__:
            continue
        for name, value in vars(cls).items():
            if not name.startswith("_") and inspect.isfunction(value):
                names.add(name)
    return frozenset(names)


def suite_sources() -> dict[str, str]:
    """The source of every module of the conformance package, by module name."""
    package = importlib.import_module(_PACKAGE)
    sources = {_PACKAGE: inspect.getsource(package)}
    for module in pkgutil.iter_modules(package.__path__, f"{_PACKAGE}."):
        sources[module.name] = inspect.getsource(importlib.import_module(module.name))
    return sources


def called_methods(sources: Iterable[str]) -> frozenset[str]:
    """The names called as methods (``something.name(...)``) in ``sources``."""
    names: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
    return frozenset(names)


def missing_operations(sources: Iterable[str] | None = None, protocol: type = Transaction) -> list[str]:
    """The operations of ``protocol`` that ``sources`` (default: the suite) never call, sorted."""
    called = called_methods(suite_sources().values() if sources is None else sources)
    return sorted(protocol_operations(protocol) - called)
