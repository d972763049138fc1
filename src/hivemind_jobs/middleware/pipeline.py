"""The middleware onion: a job's middleware resolved and ordered, then run around the job's call.

Async jobs run on the event loop; sync jobs run on the executor given (a colony's bounded thread
pool), in a copy of the context variables, so the active :class:`JobContext` (and
:func:`~hivemind_jobs.current_job`) is theirs in threads too.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import Activator, AllowList, PreparedCall, resolve_target
from hivemind_jobs.core.job import Middleware, MiddlewareEntry
from hivemind_jobs.errors import JobDefinitionError
from hivemind_jobs.middleware.protocol import JobMiddleware

__all__ = ["ResolvedMiddleware", "resolve_middleware", "run_pipeline"]


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
    outer: Sequence[JobMiddleware] = (),
) -> list[ResolvedMiddleware]:
    """The environment's middleware instances (``outer``, outermost, in their order), then the
    swarm's middleware and the job's own ordered by priority (lowest first, None last; stable)."""
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
    if outer:
        resolved[:0] = [ResolvedMiddleware(instance, None, None) for instance in outer]
    return resolved


async def run_pipeline(
    context: JobContext,
    middleware: Sequence[ResolvedMiddleware],
    prepared: Callable[[], PreparedCall],
    executor: Executor,
    run_sync: Callable[[PreparedCall], Awaitable[Any]] | None = None,
) -> Any:
    """Run the middleware onion around the job; returns the (possibly replaced) result. A sync job
    runs on ``executor``, or through ``run_sync`` when given (a child process)."""

    async def call_job() -> Any:
        call = prepared()
        if call.is_async:
            return await call.function(*call.args, **call.kwargs)
        if run_sync is not None:
            return await run_sync(call)
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
