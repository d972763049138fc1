"""The execution context a job receives when a parameter is annotated with :class:`JobContext`.

The worker runtime creates one per execution; the job never gets it from its caller (the
parameter is left out of the stored arguments and of the type-checked signature). Deep code
reaches the running job's context through :func:`current_job`.
"""

from __future__ import annotations

import abc
import contextvars
import logging
import threading
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from hivemind_jobs.core.invocation import Activator
from hivemind_jobs.errors import HiveMindError

if TYPE_CHECKING:
    from hivemind_jobs.client.locked import LockedJob

__all__ = ["JobContext", "ScopedActivator", "current_job"]

_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("hivemind_current_job", default=None)


class JobContext(abc.ABC):
    """What a running job can reach: its locked job, who runs it, its log and cancellation.

    Job data is read and written through :attr:`job` (``await ctx.job.set_data(...)``): it is
    written at once, so a job can use it to remember progress across retries.
    """

    @property
    @abc.abstractmethod
    def job(self) -> LockedJob:
        """The job being executed, locked by the drone (properties readable and writable)."""

    @property
    @abc.abstractmethod
    def colony(self) -> str: ...

    @property
    @abc.abstractmethod
    def swarm(self) -> str: ...

    @property
    @abc.abstractmethod
    def drone(self) -> str: ...

    @property
    @abc.abstractmethod
    def log(self) -> logging.Logger:
        """A logger whose records are persisted with the job (at or above the configured level)."""

    @property
    @abc.abstractmethod
    def cancelled(self) -> threading.Event:
        """Set when the job is asked to stop; sync jobs poll it (async jobs are cancelled)."""

    def raise_if_cancelled(self) -> None:
        """Raise ``asyncio.CancelledError``-like :class:`JobCancelled` when cancellation was asked."""
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job.id} was asked to stop")

    def activate(self) -> contextvars.Token[JobContext | None]:
        """Make this the context :func:`current_job` returns (the worker calls this)."""
        return _current.set(self)

    @staticmethod
    def deactivate(token: contextvars.Token[JobContext | None]) -> None:
        _current.reset(token)


class JobCancelled(HiveMindError):
    """Raised inside a sync job by :meth:`JobContext.raise_if_cancelled`."""


def current_job() -> JobContext:
    """The context of the job running in this task or thread; raises outside a job."""
    context = _current.get()
    if context is None:
        raise LookupError("no HiveMind job is running in this context")
    return context


class ScopedActivator(Activator, Protocol):
    """An :class:`~hivemind_jobs.Activator` that opens a scope for each job execution (a DI
    container's request scope, say).

    The colony enters ``scope(context, cls)`` around each execution, middleware included, and
    leaves it once the job has returned or raised; the activator it yields activates the job's
    instance for that execution. ``cls`` is the class of an instance-method job, imported and
    checked against the allow list (None for a function job). ``activate`` alone is still used
    for middleware classes, outside any scope. See :class:`~hivemind_jobs.Activator` for the rest.
    """

    def scope(self, context: JobContext, cls: type | None) -> AbstractAsyncContextManager[Activator]: ...
