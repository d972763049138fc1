"""Keeping the objects a process starts with out of the cyclic garbage collector's full passes.

CPython's collector finds reference cycles by walking every container object it tracks. Its full
(oldest-generation) pass walks all of them: the modules, classes and functions of every imported
package, and whatever the application built at startup, several hundred thousand objects in a
process with a driver and a web framework loaded. Jobs and their rows live a few milliseconds but
outlive the young collections that run meanwhile, so they age into the oldest generation and
trigger such full passes again and again: about a tenth of a colony's CPU time and of a
``create_many`` on SQLite were spent in them (docs/performance.md).

:func:`freeze_startup_objects` collects once and moves every object alive at that moment to the
permanent generation (:func:`gc.freeze`): later passes skip them; they are still freed by their
reference counts as before. ``HiveMind`` calls it when it opens, once per process (see its
``gc_freeze`` argument).
"""

from __future__ import annotations

import gc
import os

__all__ = ["freeze_startup_objects"]

#: the process whose objects were frozen here (a forked child inherits them already frozen)
_frozen_in: int | None = None


def freeze_startup_objects() -> bool:
    """Collect, then freeze every object alive now, once per process; returns whether it did.

    Nothing happens when the collector is disabled (the application manages it) or when objects
    are frozen already (by the application, by a server that forked this process, or by an
    earlier call here).
    """
    global _frozen_in
    pid = os.getpid()
    if _frozen_in == pid or not gc.isenabled() or gc.get_freeze_count():
        return False
    _frozen_in = pid
    gc.collect()  # garbage alive now is freed first, never frozen
    gc.freeze()
    return True
