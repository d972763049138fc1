"""svcs: instance-method jobs resolved from an svcs registry, with a container per job execution.

::

    import svcs
    from hivemind_jobs.contrib.svcs import SvcsActivator

    registry = svcs.Registry()
    registry.register_factory(Mailer, make_mailer)  # a generator factory is cleaned up after the job
    registry.register_factory(SendWelcome, make_send_welcome)  # the job's class
    hive = hm.HiveMind("sqlite:///app.db", activator=SvcsActivator(registry))

For each job execution the activator creates an ``svcs.Container(registry)``, registers the
execution's :class:`~hivemind_jobs.JobContext` in it as a local value (a factory that takes the
container reads it with ``container.get(JobContext)``), resolves the job's class with ``aget``
(sync and async factories both work) and closes the container with ``aclose()`` once the job has
returned or raised, so the cleanups run once per execution. svcs logs a cleanup that fails and
goes on, as it does everywhere.

A job class the registry does not know fails the job with a
:class:`~hivemind_jobs.JobDefinitionError` (retrying cannot help); an error raised by a factory
fails it as the job's own error would.

svcs has no container outside a job: middleware classes are activated by calling the class
without arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar, cast

import svcs

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.core.invocation import Activator
from hivemind_jobs.errors import JobDefinitionError

__all__ = ["SvcsActivator"]

T = TypeVar("T")


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class SvcsActivator:
    """An activator (:class:`~hivemind_jobs.ScopedActivator`) that resolves instance-method jobs
    from an ``svcs.Registry``, with a new ``svcs.Container`` for each job execution.

    The registry stays the application's: closing it (``await registry.aclose()``) is its business.
    """

    def __init__(self, registry: svcs.Registry) -> None:
        self.registry = registry

    def activate(self, cls: type[T]) -> T:
        """An instance of ``cls`` outside a job's container (a middleware class): ``cls()``."""
        try:
            return cls()
        except TypeError as error:
            raise JobDefinitionError(
                f"{_name(cls)} is activated outside a job's container (a middleware class), where svcs has no "
                f"container to resolve it from, and it cannot be constructed without arguments ({error}); "
                "give it a no-argument constructor"
            ) from error

    @contextlib.asynccontextmanager
    async def scope(self, context: JobContext, cls: type | None) -> AsyncIterator[Activator]:
        """The container of one execution, with ``context`` registered in it; ``cls`` (the
        instance-method job's class) is resolved from it on entry."""
        container = svcs.Container(self.registry)
        try:
            container.register_local_value(JobContext, context)
            instance: object | None = None
            if cls is not None:
                try:
                    instance = await container.aget(cls)
                except svcs.exceptions.ServiceNotFoundError as error:
                    raise JobDefinitionError(
                        f"the svcs registry has no factory for {_name(cls)}: register one "
                        f"(registry.register_factory({cls.__qualname__}, ...)) to run it as a job"
                    ) from error
            yield _JobContainerActivator(self, cls, instance)
        except BaseException as error:
            # what the job raised reaches the cleanups of factories registered with suppress_context_exit=False
            await container.aclose(type(error), error, error.__traceback__)
            raise
        await container.aclose()


class _JobContainerActivator:
    """Activates the job's class of one execution: the instance resolved when its container opened."""

    __slots__ = ("_cls", "_instance", "_outer")

    def __init__(self, outer: SvcsActivator, cls: type | None, instance: object | None) -> None:
        self._outer = outer
        self._cls = cls
        self._instance = instance

    def activate(self, cls: type[T]) -> T:
        if cls is self._cls:
            return cast(T, self._instance)
        return self._outer.activate(cls)
