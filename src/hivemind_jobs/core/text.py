"""Text every backend stores and compares alike: no NUL characters, no lone surrogates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["nested_text_problem", "storable_text", "text_problem"]


def text_problem(value: str, limit: int) -> str | None:
    """What keeps ``value`` from being stored and compared alike on every backend, if anything:
    longer than ``limit``, a NUL character, or a lone surrogate (not valid Unicode)."""
    if len(value) > limit:
        return f"text of {len(value)} characters is longer than {limit}"
    if "\x00" in value:
        return "text must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (lone surrogate)"
    return None


def nested_text_problem(value: Any, limit: int, _depth: int = 0) -> str | None:
    """:func:`text_problem` of the first bad string in ``value`` or in the lists, tuples, sets and
    mappings (keys too) it holds; other values are left to their codec."""
    if isinstance(value, str):
        return text_problem(value, limit)
    if _depth > 50:
        return None
    if isinstance(value, Mapping):
        items: Any = (item for pair in value.items() for item in pair)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return None
    for item in items:
        problem = nested_text_problem(item, limit, _depth + 1)
        if problem is not None:
            return problem
    return None


def storable_text(value: str) -> str:
    """``value`` with NUL characters and lone surrogates replaced by U+FFFD, for text the library
    produces itself from foreign input (an exception's message, a traceback)."""
    if text_problem(value, len(value)) is None:
        return value
    return _UNSTORABLE.sub("\ufffd", value)


# A Python str holds a surrogate code point only unpaired: pairs are decoded into one character.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
