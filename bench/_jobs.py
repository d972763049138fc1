"""Job bodies of bench/throughput.py and bench/scale.py and the in-process records they report to.

They live in a module of their own so their stored targets (``_jobs:noop``, ...) can be imported by
name in any process: the benchmark script itself runs as ``__main__``, and bench/scale.py's worker
processes import them by name. bench/ must be on sys.path.
"""

from __future__ import annotations

import asyncio
import threading
import time


class Tracker:
    """Counts job runs and their latencies; wakes the event loop that armed it at the target count.

    Thread-safe: synchronous jobs run on the colony's thread pool, asynchronous ones on the loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arm(0)

    def arm(self, target: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        with self._lock:
            self.target = target
            self.count = 0
            self.latencies: list[float] = []
            self.first_at: float | None = None  # time.perf_counter() of the first and the target-th run
            self.last_at: float | None = None
            self.last_cpu: float | None = None  # time.process_time() at the target-th run
            self._loop = loop
            self._reached = asyncio.Event()

    def ran(self, latency: float | None = None) -> None:
        now = time.perf_counter()
        with self._lock:
            self.count += 1
            if self.first_at is None:
                self.first_at = now
            if latency is not None:
                self.latencies.append(latency)
            if self.count == self.target:
                self.last_at = now
                self.last_cpu = time.process_time()
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._reached.set)

    async def wait(self, seconds: float) -> None:
        """Return once ``target`` jobs ran; raise TimeoutError (with the count so far) after ``seconds``."""
        try:
            await asyncio.wait_for(self._reached.wait(), seconds)
        except TimeoutError:
            raise TimeoutError(f"only {self.count} of {self.target} jobs ran within {seconds:.0f} s") from None


TRACKER = Tracker()


class Stamps:
    """How many jobs this process ran, and the wall-clock times (``time.time()``) of the first and
    the latest: what a worker process of bench/scale.py reports when it exits. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def ran(self) -> None:
        now = time.time()
        with self._lock:
            self.count += 1
            if self.first is None:
                self.first = now
            self.last = now

    def as_dict(self) -> dict[str, float | int | None]:
        with self._lock:
            return {"count": self.count, "first": self.first, "last": self.last}


STAMPS = Stamps()


async def noop(number: int) -> None:
    """The throughput job: nothing but the count."""
    TRACKER.ran()


async def latency_job(enqueued_wall: float) -> None:
    """The latency job: ``enqueued_wall`` is time.time() taken just before the enqueue call."""
    TRACKER.ran(time.time() - enqueued_wall)


async def stamp(number: int) -> None:
    """The job of bench/scale.py's worker processes: nothing but the stamp."""
    STAMPS.ran()


def noop_sync(number: int) -> None:
    """``noop`` as a synchronous job (run on the colony's thread pool)."""
    TRACKER.ran()


def latency_job_sync(enqueued_wall: float) -> None:
    """``latency_job`` as a synchronous job."""
    TRACKER.ran(time.time() - enqueued_wall)
