"""Job functions and the HiveMind factory of the limit tests' worker processes.

Workers run as ``python -m hivemind_jobs.cli worker tests.processes.limit_jobs:hive``; the factory
reads the database URL and the lock timeout from the environment. Each job appends ``start`` and
``end`` lines (wall clock, pid) to a log file: one ``write`` of a short line to a file opened with
``O_APPEND`` is atomic, so the processes' lines never mix.
"""

# ruff: noqa: ASYNC240 - the jobs append one short line to a file; a thread hop would only blur the timings

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import hivemind_jobs as hm

URL_ENV = "HIVEMIND_LIMIT_TEST_URL"
LOCK_TIMEOUT_ENV = "HIVEMIND_LIMIT_TEST_LOCK_TIMEOUT"


def options(lock_timeout: float) -> hm.Options:
    return hm.Options(lock_timeout=timedelta(seconds=lock_timeout))


def hive() -> hm.HiveMind:
    """The worker's HiveMind (the worker command calls this factory)."""
    return hm.HiveMind(os.environ[URL_ENV], options=options(float(os.environ[LOCK_TIMEOUT_ENV])))


def _append(log: str, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


async def work(log: str, tenant: str, seconds: float) -> None:
    """Log this run's start and end for ``tenant`` and sleep ``seconds`` in between."""
    _append(log, f"start {tenant} {time.time():.6f} {os.getpid()}\n")
    await asyncio.sleep(seconds)
    _append(log, f"end {tenant} {time.time():.6f} {os.getpid()}\n")


async def long_first_time(log: str, tenant: str, marker: str, seconds: float) -> None:
    """The first run leaves ``marker`` and sleeps ``seconds``; later runs return at once."""
    path = Path(marker)
    first = not path.exists()
    if first:
        path.write_text(str(os.getpid()))
    await work(log, tenant, seconds if first else 0.0)
