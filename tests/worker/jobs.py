"""Jobs and middleware the in-process worker tests run (importable as ``tests.worker.jobs``)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import threading
import time
from typing import Any

import hivemind_jobs as hm

#: what ran, in order (cleared by the tests' fixture)
RAN: list[Any] = []
_guard = threading.Lock()


def record(value: Any) -> None:
    with _guard:
        RAN.append(value)


def note(label: str) -> str:
    record(label)
    return label


def echo_back(value: Any) -> Any:
    return value


async def async_note(label: str) -> str:
    await asyncio.sleep(0)
    record(label)
    return f"async {label}"


def add(a: int, b: int) -> int:
    return a + b


def boom(message: str) -> None:
    raise ValueError(message)


def with_context(ctx: hm.JobContext, label: str) -> dict[str, Any]:
    ctx.log.info("info from %s", label)
    ctx.log.debug("debug is below the threshold")
    ctx.log.warning("warning from %s", label)
    assert hm.current_job() is ctx
    return {"colony": ctx.colony, "swarm": ctx.swarm, "drone": ctx.drone, "job": ctx.job.id}


def state_history(ctx: hm.JobContext) -> list[list[Any]]:
    """The history of its own job as the running job reads it: name and sequence of each state."""
    return [[state.name, state.sequence] for state in ctx.job.states]


async def async_with_context(ctx: hm.JobContext) -> str:
    assert hm.current_job() is ctx
    ctx.job.set_property("seen", True)
    return ctx.drone


def unencodable() -> object:
    return threading.Lock()


async def flaky(ctx: hm.JobContext, failures: int) -> int:
    """Fails ``failures`` times, then succeeds; the attempt number is kept as job data."""
    attempt = await ctx.job.try_get_data("attempt", int, default=0) + 1
    await ctx.job.set_data("attempt", attempt)
    record((ctx.job.id, attempt, time.monotonic()))
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


#: label -> the gate a ``gated`` job of that label waits for (made on first use, in the test's loop)
GATES: dict[str, asyncio.Event] = {}


def gate(label: str) -> asyncio.Event:
    return GATES.setdefault(label, asyncio.Event())


async def gated(ctx: hm.JobContext, label: str) -> str:
    """Records ("start", label, its drone), then waits until the test opens ``gate(label)``."""
    record(("start", label, ctx.drone))
    await gate(label).wait()
    return label


async def sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    record(("slept", seconds))
    return "woke"


def sync_sleeper(ctx: hm.JobContext, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.raise_if_cancelled()
        time.sleep(0.02)
    return "done"


class Greeter:
    def __init__(self) -> None:
        self.greeting = "hello"

    def greet(self, name: str) -> str:
        record(name)
        return f"{self.greeting} {name}"


class Tag:
    """Records its input before and after the job; replaces the result when asked."""

    async def __call__(self, context: hm.JobContext, input: str, call_next: hm.CallNext) -> Any:
        record(f"{input}:before")
        result = await call_next()
        record(f"{input}:after")
        if input == "replace":
            return "replaced"
        return result


class Skip:
    """Skips the job (never calls call_next)."""

    async def __call__(self, context: hm.JobContext, input: Any, call_next: hm.CallNext) -> Any:
        record("skipped")
        return "skipped by middleware"


def _first_run(label: str, job_id: int) -> bool:
    """Records that ``label`` started for ``job_id``; whether it is the first start of this test."""
    with _guard:
        return not any(item[:2] == (label, job_id) for item in RAN if isinstance(item, tuple) and len(item) == 4)


async def slow_first_time(ctx: hm.JobContext, seconds: float) -> str:
    """Sleeps ``seconds`` on its first run (cancellable), returns at once on the next ones."""
    first = _first_run("async", ctx.job.id)
    start = time.monotonic()
    try:
        if first:
            await asyncio.sleep(seconds)
    finally:
        record(("async", ctx.job.id, start, time.monotonic()))
    return "done"


def stubborn_first_time(ctx: hm.JobContext, seconds: float) -> str:
    """Blocks ``seconds`` on its first run ignoring ``ctx.cancelled``; returns at once on the next ones.
    Records (label, job id, start, end) of every run."""
    first = _first_run("stubborn", ctx.job.id)
    start = time.monotonic()
    if first:
        time.sleep(seconds)
    record(("stubborn", ctx.job.id, start, time.monotonic()))
    return "done"


def cooperative(ctx: hm.JobContext, seconds: float) -> str:
    """Works in small steps for ``seconds``, stopping when asked; records (label, job id, start, end)."""
    start = time.monotonic()
    try:
        deadline = start + seconds
        while time.monotonic() < deadline:
            ctx.raise_if_cancelled()
            time.sleep(0.01)
    finally:
        record(("cooperative", ctx.job.id, start, time.monotonic()))
    return "done"


async def deaf_sleeper(seconds: float) -> str:
    """Sleeps ``seconds`` even when cancelled (a job that swallows its cancel)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.sleep(left)
        except asyncio.CancelledError:
            continue
    return "slept anyway"


@dataclasses.dataclass(frozen=True)
class Invoice:
    """A result type that is neither registered nor JSON: decoded only when the reader names it."""

    number: int
    due: datetime.date


def make_invoice(number: int) -> Invoice:
    return Invoice(number, datetime.date(2026, 1, number))


async def async_invoices(count: int) -> list[Invoice]:
    return [make_invoice(number) for number in range(1, count + 1)]


def logs_inside(message: str) -> str:
    """Logs through stdlib logging from its sync thread (not through ctx.log)."""
    logging.getLogger("tests.worker.inside").warning("inside: %s", message)
    return message
