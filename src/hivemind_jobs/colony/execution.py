"""Running one job: its context, its middleware onion and the call itself.

Async jobs run on the event loop (cancelled with asyncio cancellation); sync jobs run in the
colony's bounded thread pool and see cancellation through ``ctx.cancelled``. Both run with the
job's context active, so :func:`~hivemind_jobs.current_job` works in deep code and in threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import logging
import threading
import traceback
import typing
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.client.locked import LockedJob
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import Activator, AllowList, PreparedCall, resolve_target
from hivemind_jobs.core.job import Middleware, MiddlewareEntry
from hivemind_jobs.core.limits import Limits
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.errors import JobDefinitionError
from hivemind_jobs.middleware import JobMiddleware
from hivemind_jobs.storage.protocol import JobLogRow

__all__ = ["DroneJobContext", "LogBuffer", "ResolvedMiddleware", "resolve_middleware", "run_pipeline"]

_job_logger_parent = logging.getLogger("hivemind_jobs.job")
_event_guard = threading.Lock()


class LogBuffer:
    """A job's log rows (at or above its level) waiting for the colony to write them.

    Rows are cut to the environment's :class:`Limits` as they come in: a job that logs a huge
    message (or an exception with a huge text) keeps running, its row ends with a marker.
    """

    def __init__(self, job_id: int, level: int, limits: Limits | None = None) -> None:
        self.job_id = job_id
        self.level = level
        self.limits = limits if limits is not None else Limits()
        self._rows: list[JobLogRow] = []
        self._guard = threading.Lock()

    def append(self, row: JobLogRow) -> None:
        row = _within_limits(row, self.limits)
        with self._guard:
            self._rows.append(row)

    def add(self, level: int, message: str) -> None:
        if level >= self.level:
            self.append(JobLogRow(self.job_id, level, message, "hivemind_jobs.drone"))

    def take(self) -> list[JobLogRow]:
        if not self._rows:
            return []
        with self._guard:
            rows, self._rows = self._rows, []
        return rows

    def put_back(self, rows: list[JobLogRow]) -> None:
        """Rows whose write failed go back in front (nothing is dropped; upstream lost them)."""
        if rows:
            with self._guard:
                self._rows[:0] = rows


def _within_limits(row: JobLogRow, limits: Limits) -> JobLogRow:
    message = limits.log_message(row.message)
    exception_message, traceback_text = limits.exception_text(row.exception_message, row.traceback)
    if message is row.message and exception_message is row.exception_message and traceback_text is row.traceback:
        return row
    return dataclasses.replace(row, message=message, exception_message=exception_message, traceback=traceback_text)


class _BufferHandler(logging.Handler):
    """Turns a job logger's records into rows of its :class:`LogBuffer`."""

    def __init__(self, buffer: LogBuffer) -> None:
        super().__init__(buffer.level)
        self._buffer = buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the job
            message = f"{record.msg!r} % {record.args!r}"
        error = record.exc_info[1] if record.exc_info else None
        kind = type(error) if error is not None else None
        self._buffer.append(
            JobLogRow(
                job_id=self._buffer.job_id,
                level=record.levelno,
                message=redact_secrets(message),
                logger=record.name,
                exception_type=f"{kind.__module__}.{kind.__qualname__}" if kind is not None else None,
                exception_message=redact_secrets(str(error)) if error is not None else None,
                traceback=redact_secrets("".join(traceback.format_exception(error))) if error is not None else None,
            )
        )


class DroneJobContext(JobContext):
    """The context of one execution."""

    def __init__(
        self, locked: LockedJob, *, colony: str, swarm: str, drone: str, log_level: int, logger_name: str
    ) -> None:
        self._locked = locked
        self._colony = colony
        self._swarm = swarm
        self._drone = drone
        self._cancelled: threading.Event | None = None
        # the environment's limits, reached through the client the locked job saves with
        self.buffer = LogBuffer(locked.id, log_level, locked._client.environment.options.limits)
        self._log_level = log_level
        self._logger_name = logger_name
        self._logger: logging.Logger | None = None

    @property
    def job(self) -> LockedJob:
        return self._locked

    @property
    def colony(self) -> str:
        return self._colony

    @property
    def swarm(self) -> str:
        return self._swarm

    @property
    def drone(self) -> str:
        return self._drone

    @property
    def log(self) -> logging.Logger:
        logger = self._logger
        if logger is None:  # most jobs never log: build the logger on first use
            logger = logging.Logger(self._logger_name, self._log_level)
            logger.parent = _job_logger_parent
            logger.addHandler(_BufferHandler(self.buffer))
            self._logger = logger
        return logger

    @property
    def cancelled(self) -> threading.Event:
        event = self._cancelled
        if event is None:  # made on first use (most jobs never look), once even across threads
            with _event_guard:
                if self._cancelled is None:
                    self._cancelled = threading.Event()
                event = self._cancelled
        return event


@dataclass(frozen=True, slots=True)
class ResolvedMiddleware:
    instance: JobMiddleware
    input: Any
    priority: int | None


def _input_hint(middleware_type: type) -> Any:
    call = getattr(middleware_type, "__call__", None)  # noqa: B004 - the annotated method, not callability
    if call is None:
        return Any
    try:
        hints = typing.get_type_hints(call)
    except Exception:
        return Any
    return hints.get("input", Any)


def _activate(middleware_type: Any, activator: Activator, name: str) -> JobMiddleware:
    if not isinstance(middleware_type, type):
        raise JobDefinitionError(f"middleware {name} is not a class")
    instance: object = activator.activate(middleware_type)
    if not callable(instance) or not inspect.iscoroutinefunction(type(instance).__call__):
        raise JobDefinitionError(f"middleware {name} must define `async def __call__(self, context, input, call_next)`")
    return typing.cast(JobMiddleware, instance)


def resolve_middleware(
    swarm_middleware: Sequence[Middleware],
    job_middleware: Sequence[MiddlewareEntry],
    *,
    codec: Codec,
    activator: Activator,
    allow: AllowList,
) -> list[ResolvedMiddleware]:
    """Swarm middleware then the job's own, ordered by priority (lowest first, None last; stable)."""
    resolved: list[ResolvedMiddleware] = []
    for spec in swarm_middleware:
        name = f"{spec.type.__module__}.{spec.type.__qualname__}"
        resolved.append(ResolvedMiddleware(_activate(spec.type, activator, name), spec.input, spec.priority))
    for entry in job_middleware:
        middleware_type = resolve_target(entry.type_name, allow)
        value = codec.decode(
            entry.input, _input_hint(middleware_type), path=f"input of middleware {entry.type_name}", strict=True
        )
        resolved.append(
            ResolvedMiddleware(_activate(middleware_type, activator, entry.type_name), value, entry.priority)
        )
    resolved.sort(key=lambda item: (item.priority is None, item.priority or 0))
    return resolved


async def run_pipeline(
    context: DroneJobContext,
    middleware: Sequence[ResolvedMiddleware],
    prepared: Callable[[], PreparedCall],
    executor: Executor,
) -> Any:
    """Run the middleware onion around the job; returns the (possibly replaced) result."""

    async def call_job() -> Any:
        call = prepared()
        if call.is_async:
            return await call.function(*call.args, **call.kwargs)
        loop = asyncio.get_running_loop()
        snapshot = contextvars.copy_context()
        return await loop.run_in_executor(
            executor, functools.partial(snapshot.run, call.function, *call.args, **call.kwargs)
        )

    def step(index: int) -> Callable[[], Awaitable[Any]]:
        if index == len(middleware):
            return call_job
        item = middleware[index]

        async def call_next() -> Any:
            return await item.instance(context, item.input, step(index + 1))

        return call_next

    token = context.activate()
    try:
        return await step(0)()
    finally:
        context.deactivate(token)
