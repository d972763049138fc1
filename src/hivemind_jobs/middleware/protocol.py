"""The contract of a job middleware class."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from hivemind_jobs.client.context import JobContext

__all__ = ["CallNext", "JobMiddleware"]

CallNext = Callable[[], Awaitable[Any]]


@runtime_checkable
class JobMiddleware(Protocol):
    """``async def __call__(self, context, input, call_next) -> result``."""

    async def __call__(self, context: JobContext, input: Any, call_next: CallNext) -> Any: ...
