"""What the tests of the container activators (dishka, svcs) share: an event log, a resource of
one job execution, job methods that report on it, a plain job, a recording middleware and a
colony run that allows the calling test module's jobs and these."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import hivemind_jobs as hm

FAST = hm.ColonyOptions(poll_interval=timedelta(milliseconds=50), graceful_stop=timedelta(seconds=2))
NO_RETRIES = hm.Options(retry=hm.RetryPolicy(max_retries=0))

#: what happened, in order: ("open" | "ran" | "close", connection serial), middleware steps
EVENTS: list[tuple[Any, ...]] = []
_serials = itertools.count(1)
_guard = threading.Lock()


def record(*event: Any) -> None:
    with _guard:
        EVENTS.append(event)


def position(event: tuple[Any, ...]) -> int:
    return EVENTS.index(event)


@pytest.fixture(autouse=True)
def clear_events() -> Iterator[None]:
    """Autouse in every module that imports it: each test starts with an empty event log."""
    EVENTS.clear()
    yield
    EVENTS.clear()


class Connection:
    """A resource of one job execution: opened by its provider or factory, closed with the scope."""

    def __init__(self, job_id: int) -> None:
        self.serial = next(_serials)
        self.job_id = job_id
        self.closed = False


class Greeting:
    """Job methods of a class resolved per execution: each reports the connection it was given."""

    connection: Connection
    greeting = "hello"

    def _report(self, name: str) -> dict[str, Any]:
        record("ran", self.connection.serial)
        return {
            "text": f"{self.greeting} {name}",
            "connection": self.connection.serial,
            "job": self.connection.job_id,
            "closed": self.connection.closed,
            "thread": threading.current_thread() is threading.main_thread(),
        }

    def greet(self, name: str) -> dict[str, Any]:
        return self._report(name)

    async def agreet(self, name: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self._report(name)

    def fail(self) -> None:
        record("ran", self.connection.serial)
        raise ValueError(f"failed on connection {self.connection.serial}")


def plain(label: str) -> str:
    record("plain", label)
    return label


class Watch:
    """Middleware (activated outside a job's scope: constructed without arguments)."""

    async def __call__(self, context: hm.JobContext, input: Any, call_next: hm.CallNext) -> Any:
        record("middleware:before", context.job.id)
        try:
            return await call_next()
        except Exception as error:
            record("middleware:saw", type(error).__name__, str(error))
            raise
        finally:
            record("middleware:after", context.job.id)


class NeedsArgument:
    def __init__(self, value: int) -> None:
        self.value = value


async def run_colony(hive: hm.HiveMind, module: str, *, middleware: bool = False) -> hm.Colony:
    """One burst of a colony allowed to run the jobs of ``module`` and of this one."""
    colony = hive.colony(name="di", allow=hm.AllowList(modules=[module, __name__]), options=FAST)
    colony.swarm("main", drones=4, middleware=[hm.Middleware(Watch)] if middleware else [])
    await colony.run(burst=True)
    return colony
