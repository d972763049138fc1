"""Job functions and the HiveMind factory of the stop process tests (any backend).

The worker command calls :func:`hive`, which reads the storage URL and the lock timeout from the
environment. Every run appends ``start``/``end`` lines with the system-wide monotonic clock to a
file of its own process, so the runs of different workers can be compared.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import hivemind_jobs as hm

URL_ENV = "HIVEMIND_STOP_TEST_URL"
LOCK_TIMEOUT_ENV = "HIVEMIND_STOP_TEST_LOCK_TIMEOUT"


GRACEFUL_STOP_ENV = "HIVEMIND_STOP_TEST_GRACEFUL_STOP"
SHUTDOWN_TIMEOUT_ENV = "HIVEMIND_STOP_TEST_SHUTDOWN_TIMEOUT"
NAME_ENV = "HIVEMIND_STOP_TEST_NAME"


def colony() -> hm.Colony:
    """The worker's colony (the worker command calls this factory): one drone, test-scale timings."""
    lock_timeout = timedelta(seconds=float(os.environ[LOCK_TIMEOUT_ENV]))
    hive = hm.HiveMind(os.environ[URL_ENV], options=hm.Options(lock_timeout=lock_timeout))
    options = hm.ColonyOptions(
        poll_interval=timedelta(milliseconds=100),
        lock_monitor_interval=timedelta(milliseconds=500),
        graceful_stop=timedelta(seconds=float(os.environ[GRACEFUL_STOP_ENV])),
        shutdown_timeout=timedelta(seconds=float(os.environ[SHUTDOWN_TIMEOUT_ENV])),
    )
    built = hive.colony(name=os.environ[NAME_ENV], options=options, allow=hm.AllowList(modules=["tests.processes"]))
    built.swarm("main", drones=1)
    return built


def _record(log_dir: str, event: str) -> None:
    with open(Path(log_dir) / f"runs-{os.getpid()}.log", "a") as sink:
        sink.write(f"{event} {time.monotonic():.6f}\n")
        sink.flush()


def read_runs(log_dir: Path) -> list[tuple[int, str, float]]:
    """(pid, event, monotonic time) of every line, in the order each process wrote them."""
    lines: list[tuple[int, str, float]] = []
    for path in sorted(log_dir.glob("runs-*.log")):
        pid = int(path.stem.removeprefix("runs-"))
        for line in path.read_text().splitlines():
            event, at = line.split()
            lines.append((pid, event, float(at)))
    return lines


def cooperative(ctx: hm.JobContext, log_dir: str, seconds: float) -> int:
    """Work for ``seconds``, looking at ``ctx.cancelled`` every 0.5 s; returns the pid."""
    _record(log_dir, "start")
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
            ctx.raise_if_cancelled()
        return os.getpid()
    finally:
        _record(log_dir, "end")


def uncooperative(log_dir: str, seconds: float) -> int:
    """Sleep ``seconds`` whatever happens; returns the pid."""
    _record(log_dir, "start")
    try:
        time.sleep(seconds)
        return os.getpid()
    finally:
        _record(log_dir, "end")
