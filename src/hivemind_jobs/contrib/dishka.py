"""dishka: instance-method jobs resolved from a dishka container, in a scope per job execution.

::

    from dishka import Provider, Scope, make_async_container
    from hivemind_jobs.contrib.dishka import DishkaActivator, JobContextProvider

    provider = Provider(scope=Scope.REQUEST)
    provider.provide(Mailer)
    provider.provide(SendWelcome)  # the job's class: hm.instance(SendWelcome).run
    container = make_async_container(provider, JobContextProvider())
    hive = hm.HiveMind("sqlite:///app.db", activator=DishkaActivator(container))

For each job execution the activator enters the container's next scope (``Scope.REQUEST`` with
dishka's default scopes), with the execution's :class:`~hivemind_jobs.JobContext` in its context,
resolves the job's class there and closes the scope once the job has returned or raised, so the
finalizers of that scope's generator providers run once per execution. Sync
(``make_container``) and async (``make_async_container``) containers are both taken; the sync
one's providers run on the colony's event loop, so keep them quick or use the async container.

A job class the scope cannot resolve fails the job with a
:class:`~hivemind_jobs.JobDefinitionError` (retrying cannot help); an error raised by a provider
fails it as the job's own error would. An error raised while the scope closes fails a job that
succeeded; after a job that raised, it is logged and the job's own error is kept.

Middleware classes are activated outside any job scope: from the root container when it provides
them (a sync container only; an async one cannot resolve without awaiting), otherwise by calling
the class without arguments.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar, cast

from dishka import AsyncContainer, BaseScope, Container, Provider, Scope, from_context
from dishka.exceptions import NoActiveFactoryError, NoFactoryError

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.core.invocation import Activator
from hivemind_jobs.errors import JobDefinitionError

__all__ = ["DishkaActivator", "JobContextProvider"]

T = TypeVar("T")

_log = logging.getLogger("hivemind_jobs.contrib.dishka")
_MISSING = (NoFactoryError, NoActiveFactoryError)


class JobContextProvider(Provider):
    """Declares the running job's :class:`~hivemind_jobs.JobContext` in ``Scope.REQUEST``, so that
    providers of that scope can depend on it: ``make_container(..., JobContextProvider())``.

    With a scope of your own (``DishkaActivator(container, scope=...)``), declare it yourself:
    ``from_context(provides=JobContext, scope=...)``.
    """

    job_context = from_context(provides=JobContext, scope=Scope.REQUEST)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _construct(cls: type[T], why: str, remedy: str) -> T:
    try:
        return cls()
    except TypeError as error:
        raise JobDefinitionError(
            f"{_name(cls)} {why}, and it cannot be constructed without arguments ({error}); {remedy}"
        ) from error


class DishkaActivator:
    """An activator (:class:`~hivemind_jobs.ScopedActivator`) that resolves instance-method jobs
    from a dishka ``Container`` or ``AsyncContainer``, in a scope per job execution.

    ``scope`` is the scope entered for each execution; None (the default) enters the container's
    next scope, ``Scope.REQUEST`` with dishka's default scopes. Pass the application's root
    container; closing it stays the application's business.
    """

    def __init__(self, container: Container | AsyncContainer, *, scope: BaseScope | None = None) -> None:
        self.container = container
        self.job_scope = scope

    def activate(self, cls: type[T]) -> T:
        """An instance of ``cls`` outside a job's scope (a middleware class): from the root container
        when it provides ``cls`` (a sync container only), else ``cls()``."""
        container = self.container
        if isinstance(container, AsyncContainer):
            return _construct(
                cls,
                "is activated outside a job's scope (a middleware class), where an async container cannot resolve it",
                "give it a no-argument constructor, or use a sync container",
            )
        try:
            return container.get(cls)
        except _MISSING:
            return _construct(
                cls,
                "is not provided by the dishka container's root scope",
                "provide it in the root scope (Scope.APP) or give it a no-argument constructor",
            )

    @contextlib.asynccontextmanager
    async def scope(self, context: JobContext, cls: type | None) -> AsyncIterator[Activator]:
        """The job scope of one execution: the container's child scope with ``context`` in it;
        ``cls`` (the instance-method job's class) is resolved there on entry."""
        job_context: dict[Any, Any] = {JobContext: context}
        container = self.container
        instance: object | None = None
        if isinstance(container, AsyncContainer):
            async_scope = container(context=job_context, scope=self.job_scope)
            try:
                if cls is not None:
                    with _resolving(cls):
                        instance = await async_scope.get(cls)
                yield _JobScopeActivator(self, cls, instance, None)
            except BaseException as error:
                try:
                    await async_scope.close(error)
                except Exception:
                    _log.exception(_CLOSE_FAILED)
                raise
            await async_scope.close()
        else:
            sync_scope = container(context=job_context, scope=self.job_scope)
            try:
                if cls is not None:
                    with _resolving(cls):
                        instance = sync_scope.get(cls)
                yield _JobScopeActivator(self, cls, instance, sync_scope)
            except BaseException as error:
                try:
                    sync_scope.close(error)
                except Exception:
                    _log.exception(_CLOSE_FAILED)
                raise
            sync_scope.close()


_CLOSE_FAILED = "closing the dishka scope of a job that raised failed too (the job's own error is kept)"


@contextlib.contextmanager
def _resolving(cls: type) -> Iterator[None]:
    """Words dishka's missing-factory errors as the job definition errors they are."""
    try:
        yield
    except _MISSING as error:
        raise JobDefinitionError(
            f"the dishka container cannot resolve {_name(cls)} in a job's scope: {error}; provide it "
            "(for example provider.provide(cls, scope=Scope.REQUEST))"
        ) from error


class _JobScopeActivator:
    """Activates the job's class of one execution: the instance resolved when its scope opened."""

    __slots__ = ("_cls", "_instance", "_outer", "_sync_scope")

    def __init__(
        self, outer: DishkaActivator, cls: type | None, instance: object | None, sync_scope: Container | None
    ) -> None:
        self._outer = outer
        self._cls = cls
        self._instance = instance
        self._sync_scope = sync_scope

    def activate(self, cls: type[T]) -> T:
        if cls is self._cls:
            return cast(T, self._instance)
        if self._sync_scope is not None:
            with _resolving(cls):
                return self._sync_scope.get(cls)
        return self._outer.activate(cls)
