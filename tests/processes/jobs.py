"""Job functions and the HiveMind factory that the worker processes of these tests import.

Workers run as ``python -m hivemind_jobs.cli worker tests.processes.jobs:hive``: ``hive`` is a
factory (the worker command calls it) that reads the database file and the lock timeout from the
environment, so this module imports without side effects in the test process too.
"""

# ruff: noqa: ASYNC240 - the jobs touch tiny marker files; a thread hop would only blur the timings under test

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import hivemind_jobs as hm
from hivemind_jobs.storage.sqlite import backend as sqlite_backend

DB_ENV = "HIVEMIND_PROCESS_TEST_DB"
LOCK_TIMEOUT_ENV = "HIVEMIND_PROCESS_TEST_LOCK_TIMEOUT"

_local = threading.local()


def options(lock_timeout: float) -> hm.Options:
    return hm.Options(lock_timeout=timedelta(seconds=lock_timeout))


def hive() -> hm.HiveMind:
    """The worker's HiveMind (the worker command calls this factory)."""
    return hm.HiveMind(f"sqlite:///{os.environ[DB_ENV]}", options=options(float(os.environ[LOCK_TIMEOUT_ENV])))


def create_side_table(path: str) -> None:
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE TABLE runs (number INTEGER NOT NULL, pid INTEGER NOT NULL)")  # no UNIQUE: count reruns
    con.close()


def _side(path: str) -> sqlite3.Connection:
    connections: dict[str, sqlite3.Connection] = _local.__dict__.setdefault("connections", {})
    con = connections.get(path)
    if con is None:
        con = connections[path] = sqlite3.connect(path, timeout=60, isolation_level=None)
    return con


def record_run(side_db: str, number: int) -> int:
    """Insert one row per execution into the side table (autocommit; concurrent writers wait on the busy timeout)."""
    _side(side_db).execute("INSERT INTO runs (number, pid) VALUES (?, ?)", (number, os.getpid()))
    return number


async def slow_first_time(marker: str, seconds: float) -> int:
    """The first run leaves ``marker`` (with its pid) and sleeps ``seconds``; later runs return at once.

    Returns the pid of the process that ran it.
    """
    path = Path(marker)
    if path.exists():
        return os.getpid()
    path.write_text(str(os.getpid()))
    await asyncio.sleep(seconds)
    return os.getpid()


async def short_after_go(started: str, go: str, seconds: float) -> str:
    """Leave ``started``, wait until ``go`` exists, then sleep ``seconds`` (so it surely runs across a stop signal)."""
    Path(started).write_text(str(os.getpid()))
    for _ in range(2000):
        if Path(go).exists():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(seconds)
    return "short done"


async def blocking_first_time(marker: str, seconds: float) -> int:
    """``slow_first_time``, but the first run blocks its worker's event loop meanwhile (no heartbeat, no watcher).

    It blocks only at a quiet moment: no write transaction of this process is open (a blocked loop
    would keep it, and with it the SQLite file's write lock, from every other worker) and nothing else
    waits to run in the current loop iteration (asyncio's internal ``_ready`` queue), so when the job
    returns the completer writes its outcome before the watcher can notice the lost lock: the write
    reaches the storage's fence.
    """
    path = Path(marker)
    if path.exists():
        return os.getpid()
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    engines = list(sqlite_backend._engines.values())
    deadline = time.monotonic() + 5.0
    for _ in range(1_000_000):
        if time.monotonic() > deadline or not (ready or any(engine.open_writes for engine in engines)):
            break
        await asyncio.sleep(0)
    path.write_text(str(os.getpid()))
    time.sleep(seconds)  # noqa: ASYNC251 - on purpose: the drone's loop is stuck as in a hung process
    return os.getpid()


async def slow_every_time(log: str, first_seconds: float, later_seconds: float) -> int:
    """Add a line to ``log`` on every run; the first run sleeps ``first_seconds``, later ones ``later_seconds``."""
    path = Path(log)
    earlier = path.read_text() if path.exists() else ""
    path.write_text(f"{earlier}{os.getpid()} start\n")
    await asyncio.sleep(later_seconds if earlier else first_seconds)
    return os.getpid()
