"""Running a coroutine on an event loop: uvloop's when it is installed, else asyncio's own.

``pip install 'hivemind-jobs[speed]'`` installs uvloop (not on Windows). A colony does most of its
work in Python, so a faster loop helps it less than it helps a network server; ``bench/LIBRARIES.md``
has the figures. Everything in HiveMind runs on either loop.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "run"]

_T = TypeVar("_T")


def loop_factory(*, use_uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when it is installed and ``use_uvloop`` is not False; None (asyncio's
    default loop) otherwise. ``use_uvloop=True`` insists on uvloop and raises ImportError without it."""
    if use_uvloop is False:
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if use_uvloop:
            raise ImportError("uvloop is not installed: pip install 'hivemind-jobs[speed]'") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(*, use_uvloop: bool | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop :func:`run` would use."""
    return "asyncio" if loop_factory(use_uvloop=use_uvloop) is None else "uvloop"


def run(main: Coroutine[Any, Any, _T], *, use_uvloop: bool | None = None, debug: bool | None = None) -> _T:
    """Like :func:`asyncio.run`, on uvloop's loop when it is installed (see :func:`loop_factory`)."""
    try:
        factory = loop_factory(use_uvloop=use_uvloop)
    except ImportError:
        main.close()  # never awaited: close it so Python does not warn about it
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
