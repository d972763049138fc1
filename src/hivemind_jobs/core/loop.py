"""Running a coroutine on an event loop: asyncio's own, or uvloop's when asked for.

HiveMind runs on either loop. uvloop is not used on its own initiative: measured on a colony
(``bench/libraries.py``, figures in ``docs/performance.md``) it saves nothing on SQLite and costs
about a quarter more CPU per job on PostgreSQL, where the colony also works off fewer jobs per
second. A colony does most of its work in Python, so a faster loop has little to save there.
``use_uvloop=True`` runs on uvloop (``pip install uvloop``).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "run"]

_T = TypeVar("_T")


def loop_factory(*, use_uvloop: bool = False) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` with ``use_uvloop=True`` (ImportError when it is not installed);
    None, meaning asyncio's default loop, otherwise."""
    if not use_uvloop:
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        raise ImportError("uvloop is not installed: pip install uvloop") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(*, use_uvloop: bool = False) -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop :func:`run` uses with these arguments."""
    return "asyncio" if loop_factory(use_uvloop=use_uvloop) is None else "uvloop"


def run(main: Coroutine[Any, Any, _T], *, use_uvloop: bool = False, debug: bool | None = None) -> _T:
    """Like :func:`asyncio.run`; on uvloop's loop with ``use_uvloop=True`` (see :func:`loop_factory`)."""
    try:
        factory = loop_factory(use_uvloop=use_uvloop)
    except ImportError:
        main.close()  # never awaited: close it so Python does not warn about it
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
