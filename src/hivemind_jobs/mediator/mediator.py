"""The mediator: events go to every handler, requests go to handlers until one answers.

Handlers are ordered by priority, lower first; handlers without a priority run last, in the order
they were added. A handler may be a function or any callable object, sync or async; an object's
``priority`` attribute is used when no priority is passed. A mediator can have a parent: it then
sees the parent's handlers too (an environment's mediator sees the application-wide ones).

An exception raised by a handler propagates to whoever published the event or sent the request;
for handlers that run inside a job transaction, that rolls the transaction back.
"""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hivemind_jobs.errors import ConfigurationError

__all__ = ["EventHandler", "Mediator", "Request", "RequestHandler", "handlers_epoch"]

R = TypeVar("R")
E = TypeVar("E")
Q = TypeVar("Q", bound="Request[Any]")

EventHandler = Callable[[E], Awaitable[None] | None]
RequestHandler = Callable[[Q], Awaitable[Any] | Any]


class Request(Generic[R]):
    """Base class of requests; ``R`` is the type of the answer."""


@dataclass(frozen=True, slots=True)
class _Registration:
    handler: Callable[[Any], Any]
    priority: int | None
    sequence: int

    def sort_key(self) -> tuple[bool, int, int]:
        return (self.priority is None, self.priority or 0, self.sequence)


_sequence = itertools.count()


def _priority_of(handler: Any, priority: int | None) -> int | None:
    if priority is None:
        priority = getattr(handler, "priority", None)
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
        raise ConfigurationError(f"handler priority must be an int or None, got {priority!r}")
    return priority


async def _call(handler: Callable[[Any], Any], message: Any) -> Any:
    result = handler(message)
    if inspect.isawaitable(result):
        result = await result
    return result


#: bumped by every (un)registration in any mediator: cached handler lists are valid while it stands
_epoch = 0
_epoch_lock = threading.Lock()


def _bump_epoch() -> None:
    global _epoch
    with _epoch_lock:
        _epoch += 1


def handlers_epoch() -> int:
    """A number that changes whenever a handler is registered or removed on any mediator: an
    answer of :meth:`Mediator.has_handlers` kept with it holds while it stays the same."""
    return _epoch


class Mediator:
    def __init__(self, parent: Mediator | None = None) -> None:
        self._parent = parent
        self._events: dict[type, list[_Registration]] = {}
        self._requests: dict[type, list[_Registration]] = {}
        self._lock = threading.Lock()
        self._cache: dict[tuple[bool, type], tuple[int, tuple[_Registration, ...]]] = {}

    # ------------------------------------------------------------------ registration
    def subscribe(
        self, event_type: type[E], handler: EventHandler[E], *, priority: int | None = None
    ) -> Callable[[], None]:
        """Call ``handler(event)`` for every published ``event_type`` (or subclass); returns an unsubscriber."""
        return self._add(self._events, event_type, handler, priority)

    def add_request_handler(
        self, request_type: type[Q], handler: RequestHandler[Q], *, priority: int | None = None
    ) -> Callable[[], None]:
        """Ask ``handler(request)``; it answers with a value, or with None to pass to the next one."""
        if not (isinstance(request_type, type) and issubclass(request_type, Request)):
            raise ConfigurationError(f"{request_type!r} is not a Request type")
        return self._add(self._requests, request_type, handler, priority)

    def _add(
        self, table: dict[type, list[_Registration]], kind: type, handler: Callable[[Any], Any], priority: int | None
    ) -> Callable[[], None]:
        if not callable(handler):
            raise ConfigurationError(f"handler {handler!r} is not callable")
        registration = _Registration(handler, _priority_of(handler, priority), next(_sequence))
        with self._lock:
            table.setdefault(kind, []).append(registration)
            _bump_epoch()

        def remove() -> None:
            with self._lock:
                registrations = table.get(kind, [])
                if registration in registrations:
                    registrations.remove(registration)
                    _bump_epoch()

        return remove

    # ------------------------------------------------------------------ dispatch
    def _handlers(self, is_event: bool, kind: type) -> tuple[_Registration, ...]:
        version = _epoch
        cached = self._cache.get((is_event, kind))
        if cached is not None and cached[0] == version:
            return cached[1]
        found: list[_Registration] = []
        mediator: Mediator | None = self
        while mediator is not None:
            table = mediator._events if is_event else mediator._requests
            with mediator._lock:
                for base in kind.__mro__:
                    found.extend(table.get(base, ()))
            mediator = mediator._parent
        ordered = tuple(sorted(found, key=_Registration.sort_key))
        self._cache[(is_event, kind)] = (version, ordered)
        return ordered

    def has_handlers(self, kind: type) -> bool:
        return bool(self._handlers(not issubclass(kind, Request), kind))

    async def publish(self, event: object) -> None:
        """Give ``event`` to every handler of its type, in priority order."""
        for registration in self._handlers(True, type(event)):
            await _call(registration.handler, event)

    async def request(self, request: Request[R]) -> R | None:
        """The first non-None answer of the request's handlers, or None when none answers."""
        for registration in self._handlers(False, type(request)):
            answer = await _call(registration.handler, request)
            if answer is not None:
                result: R = answer
                return result
        return None
