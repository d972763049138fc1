"""Job functions used by the tests (importable by name, as jobs must be)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import hivemind_jobs as hm


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Invoice:
    number: int
    amount: Decimal
    due: datetime
    tags: tuple[str, ...] = ()


def do_stuff() -> None:
    return None


def hello_world(message: str) -> str:
    return f"hello {message}"


def add(a: int, b: int = 2) -> int:
    return a + b


def everything(
    invoice: Invoice,
    color: Color,
    when: datetime,
    wait: timedelta,
    ident: UUID,
    blob: bytes,
    pair: tuple[int, str],
    tags: set[str],
    mapping: dict[int, str],
    anything: Any = None,
) -> None:
    return None


def variadic(first: int, *rest: int, **named: str) -> None:
    return None


def positional_only(a: int, /, b: int) -> int:
    return a + b


async def async_job(ctx: hm.JobContext, entity_id: str) -> str:
    return entity_id


def takes_context_later(count: int, ctx: hm.JobContext) -> int:
    return count


class ConsoleWriterJob:
    def __init__(self) -> None:
        self.prefix = ">"

    def run(self, ctx: hm.JobContext, text: str) -> str:
        return f"{self.prefix} {text}"

    async def run_async(self, ctx: hm.JobContext, text: str) -> str:
        return text

    @staticmethod
    def static_run(value: int) -> int:
        return value

    @classmethod
    def class_run(cls, value: int) -> str:
        return f"{cls.__name__}:{value}"


class NeedsArguments:
    def __init__(self, dependency: str) -> None:
        self.dependency = dependency

    def run(self, value: int) -> str:
        return f"{self.dependency}:{value}"


class ExampleMiddleware:
    async def __call__(self, ctx: Any, input: Any, call_next: Any) -> Any:
        return await call_next()


#: runs of :func:`tracked_sleep` in this process: key -> [running now, most at once]
TRACKED: dict[str, list[int]] = {}


async def tracked_sleep(key: str, seconds: float) -> None:
    """Sleep, counting how many runs of ``key`` overlap in this process."""
    counts = TRACKED.setdefault(key, [0, 0])
    counts[0] += 1
    counts[1] = max(counts[1], counts[0])
    try:
        await asyncio.sleep(seconds)
    finally:
        counts[0] -= 1
