"""Jobs the integration tests create through web routes (importable by worker processes too)."""

from __future__ import annotations


def greet(name: str) -> str:
    return f"hello {name}"
