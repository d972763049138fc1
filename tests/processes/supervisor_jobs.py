"""Job functions and the HiveMind factory of the ``hivemind worker --processes`` tests (any backend).

The worker command (supervisor and children alike) calls :func:`hive`, which reads the storage URL
and the lock timeout from the environment, so this module imports without side effects.
"""

# ruff: noqa: ASYNC240 - the jobs touch tiny marker files; a thread hop would only blur the timings under test

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import hivemind_jobs as hm

URL_ENV = "HIVEMIND_SUPERVISOR_TEST_URL"
LOCK_TIMEOUT_ENV = "HIVEMIND_SUPERVISOR_TEST_LOCK_TIMEOUT"


def hive() -> hm.HiveMind:
    """The workers' HiveMind (the worker command calls this factory)."""
    lock_timeout = timedelta(seconds=float(os.environ[LOCK_TIMEOUT_ENV]))
    return hm.HiveMind(os.environ[URL_ENV], options=hm.Options(lock_timeout=lock_timeout))


async def where(ctx: hm.JobContext, seconds: float) -> str:
    """Sleep ``seconds``; returns ``"<colony name> <pid>"`` of the process that ran it."""
    await asyncio.sleep(seconds)
    return f"{ctx.colony} {os.getpid()}"


async def hold_first_time(ctx: hm.JobContext, marker: str, seconds: float) -> str:
    """The first run writes its pid to ``marker`` and sleeps ``seconds``; later runs return at once.

    Returns ``"<colony name> <pid>"`` of the process that ran it."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        await asyncio.sleep(seconds)
    return f"{ctx.colony} {os.getpid()}"


#: one configured Colony object (not a factory): ``--processes`` refuses it, its processes would share its
#: name (nothing is opened or created by building it)
STATIC_COLONY = hm.HiveMind("sqlite:///never-opened.db").colony(name="static")
