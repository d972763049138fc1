"""Job functions and the HiveMind factory of the heartbeat process tests (any backend).

The worker command calls :func:`hive`, which reads the storage URL and the lock timeout from the
environment. Every run appends ``start``/``end`` lines with the system-wide monotonic clock to a
file of its own process, so runs of different workers can be compared even when one of them
cannot reach the database.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import hivemind_jobs as hm
from hivemind_jobs.storage.sqlite import backend as sqlite_backend

URL_ENV = "HIVEMIND_HEARTBEAT_TEST_URL"
LOCK_TIMEOUT_ENV = "HIVEMIND_HEARTBEAT_TEST_LOCK_TIMEOUT"


def hive() -> hm.HiveMind:
    """The worker's HiveMind (the worker command calls this factory)."""
    lock_timeout = timedelta(seconds=float(os.environ[LOCK_TIMEOUT_ENV]))
    return hm.HiveMind(os.environ[URL_ENV], options=hm.Options(lock_timeout=lock_timeout))


def _record(log_dir: str, event: str, number: int) -> None:
    with open(Path(log_dir) / f"runs-{os.getpid()}.log", "a") as sink:
        sink.write(f"{event} {number} {time.monotonic():.6f}\n")
        sink.flush()


def read_runs(log_dir: Path) -> dict[int, dict[int, list[tuple[str, float]]]]:
    """pid -> job number -> [(event, monotonic time)] in the order written."""
    runs: dict[int, dict[int, list[tuple[str, float]]]] = {}
    for path in sorted(log_dir.glob("runs-*.log")):
        pid = int(path.stem.removeprefix("runs-"))
        for line in path.read_text().splitlines():
            event, number, at = line.split()
            runs.setdefault(pid, {}).setdefault(int(number), []).append((event, float(at)))
    return runs


async def block_loop(log_dir: str, number: int, seconds: float) -> int:
    """Block the worker's event loop with ``time.sleep`` for ``seconds``; returns the pid.

    It starts blocking at a quiet moment: no SQLite write transaction of this process is open (a
    blocked loop would keep it, and with it the file's write lock, from every other worker, which is
    how SQLite works, not what the test is about) and nothing else waits to run in this loop iteration.
    """
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    engines = list(sqlite_backend._engines.values())
    deadline = time.monotonic() + 5.0
    for _ in range(1_000_000):
        if time.monotonic() > deadline or not (ready or any(engine.open_writes for engine in engines)):
            break
        await asyncio.sleep(0)
    _record(log_dir, "start", number)
    time.sleep(seconds)  # noqa: ASYNC251 - on purpose: a blocking call inside an async job
    _record(log_dir, "end", number)
    return os.getpid()


async def long_first_run(log_dir: str, number: int, first_seconds: float, later_seconds: float) -> int:
    """The first run of job ``number`` (any process) sleeps ``first_seconds``, later runs ``later_seconds``."""
    marker = Path(log_dir) / f"first-{number}"
    first = not marker.exists()
    marker.touch()
    _record(log_dir, "start", number)
    try:
        await asyncio.sleep(first_seconds if first else later_seconds)
    except asyncio.CancelledError:
        _record(log_dir, "cancelled", number)
        raise
    _record(log_dir, "end", number)
    return os.getpid()
