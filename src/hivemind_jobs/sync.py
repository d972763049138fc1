"""The blocking facade: the same names as the async API, for code without an event loop.

``SyncHiveMind`` runs a :class:`~hivemind_jobs.HiveMind` on a private event loop in a background
thread; every call blocks until that loop has done the work. Calling it from inside a running
event loop is refused (it would freeze that loop): use the async API there.

    with SyncHiveMind() as hive:
        job_id = hive.jobs.create(send_report, "weekly")
        with hive.jobs.get_with_lock(job_id) as job:
            job.change_state(Idle())
            job.save()
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.environment import Environment, Transaction
from hivemind_jobs.client.jobs import UNSET, BackgroundJobClient, CancelResult, DeleteResult, JobCall, JobLogEntry
from hivemind_jobs.client.locked import LockedJob
from hivemind_jobs.client.search import BulkResult, JobPage
from hivemind_jobs.core.clock import Clock
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.continuations import After
from hivemind_jobs.core.invocation import Activator
from hivemind_jobs.core.job import BackgroundJob, Middleware, PropertyValue
from hivemind_jobs.core.names import DEFAULT_ENVIRONMENT
from hivemind_jobs.core.options import Options
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.states import State
from hivemind_jobs.errors import StorageClosedError, SyncFacadeError
from hivemind_jobs.hive import DEFAULT_URL, HiveMind
from hivemind_jobs.mediator import Mediator
from hivemind_jobs.query import Condition, Order
from hivemind_jobs.recurring.calendars import CalendarRegistry
from hivemind_jobs.recurring.client import RecurringJobClient
from hivemind_jobs.recurring.model import RecurringJob
from hivemind_jobs.recurring.schedule import Schedule
from hivemind_jobs.storage.protocol import QueueStat, RecurringEventRecord

__all__ = [
    "SyncBackgroundJobClient",
    "SyncEnvironment",
    "SyncHiveMind",
    "SyncLockedJob",
    "SyncRecurringJobClient",
    "SyncTransaction",
]

P = ParamSpec("P")
T = TypeVar("T")


class _Runner(Protocol):
    def run(self, what: str, coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T: ...


class _LoopThread:
    """A private event loop running in a daemon thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hivemind-sync-loop", daemon=True)
        self._thread.start()
        self._closed = False

    def run(self, what: str, coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise SyncFacadeError(
                f"{what} blocks, and was called inside a running event loop, which it would freeze; "
                "use the async API there (await HiveMind().jobs...)"
            )
        if threading.current_thread() is self._thread:
            raise SyncFacadeError(
                f"{what} was called from a handler running on the facade's own loop; use the async API"
            )
        if self._closed:
            raise StorageClosedError("this SyncHiveMind is closed")
        return asyncio.run_coroutine_threadsafe(coroutine_factory(), self._loop).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


class SyncLockedJob:
    """Blocking counterpart of :class:`~hivemind_jobs.LockedJob`."""

    def __init__(self, locked: LockedJob, runner: _Runner) -> None:
        self._locked = locked
        self._runner = runner

    def __repr__(self) -> str:
        return repr(self._locked).replace("<LockedJob", "<SyncLockedJob", 1)

    @property
    def job(self) -> BackgroundJob:
        return self._locked.job

    @property
    def id(self) -> int:
        return self._locked.id

    @property
    def state(self) -> State:
        return self._locked.state

    @property
    def holder(self) -> str:
        return self._locked.holder

    @property
    def is_locked(self) -> bool:
        return self._locked.is_locked

    def get_property(self, name: str, default: Any = None) -> Any:
        return self._locked.get_property(name, default)

    def set_property(self, name: str, value: PropertyValue | None) -> None:
        self._locked.set_property(name, value)

    def remove_property(self, name: str) -> None:
        self._locked.remove_property(name)

    def move(self, *, queue: str | None = None, priority: Priority | int | str | None = None) -> None:
        self._locked.move(queue=queue, priority=priority)

    def change_state(self, state: State) -> bool:
        return self._runner.run("change_state()", lambda: self._locked.change_state(state))

    def save(self, *, keep_lock: bool = False) -> None:
        self._runner.run("save()", lambda: self._locked.save(keep_lock=keep_lock))

    def heartbeat(self) -> None:
        self._runner.run("heartbeat()", self._locked.heartbeat)

    def release(self) -> None:
        self._runner.run("release()", self._locked.release)

    def get_data(self, name: str, type_hint: Any = Any) -> Any:
        return self._runner.run("get_data()", lambda: self._locked.get_data(name, type_hint))

    def set_data(self, name: str, value: object) -> None:
        self._runner.run("set_data()", lambda: self._locked.set_data(name, value))

    def __enter__(self) -> SyncLockedJob:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._runner.run("leaving a locked job", lambda: self._locked.__aexit__(exc_type, exc, tb))


class SyncBackgroundJobClient:
    """Blocking counterpart of :class:`~hivemind_jobs.BackgroundJobClient` (same method names)."""

    def __init__(self, client: BackgroundJobClient, runner: _Runner) -> None:
        self._client = client
        self._runner = runner

    @property
    def environment(self) -> Environment:
        return self._client.environment

    def options(
        self,
        *,
        queue: str = UNSET,
        priority: Priority | int | str = UNSET,
        delay: timedelta | None = UNSET,
        delay_until: datetime | None = UNSET,
        after: After | None = UNSET,
        properties: Mapping[str, PropertyValue | None] | None = UNSET,
        middleware: Iterable[Middleware] | None = UNSET,
        state: State | None = UNSET,
    ) -> SyncBackgroundJobClient:
        client = self._client.options(
            queue=queue,
            priority=priority,
            delay=delay,
            delay_until=delay_until,
            after=after,
            properties=properties,
            middleware=middleware,
            state=state,
        )
        return SyncBackgroundJobClient(client, self._runner)

    @overload
    def create(
        self, function: Callable[Concatenate[JobContext, P], Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> int: ...
    @overload
    def create(self, function: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> int: ...
    def create(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> int:
        return self._runner.run("create()", lambda: self._client.create(function, *args, **kwargs))

    def create_many(self, calls: Iterable[JobCall]) -> list[int]:
        items = list(calls)
        return self._runner.run("create_many()", lambda: self._client.create_many(items))

    def get(self, job_id: int) -> BackgroundJob:
        return self._runner.run("get()", lambda: self._client.get(job_id))

    def try_get(self, job_id: int) -> BackgroundJob | None:
        return self._runner.run("try_get()", lambda: self._client.try_get(job_id))

    def count_by_state(self) -> dict[str, int]:
        return self._runner.run("count_by_state()", self._client.count_by_state)

    def queue_stats(self) -> list[QueueStat]:
        return self._runner.run("queue_stats()", self._client.queue_stats)

    def search(
        self,
        where: Condition | None = None,
        *,
        order_by: str | Order = "id",
        limit: int = 100,
        page: int | None = None,
        after: str | None = None,
    ) -> JobPage:
        return self._runner.run(
            "search()",
            lambda: self._client.search(where, order_by=order_by, limit=limit, page=page, after=after),
        )

    def count(self, where: Condition | None = None) -> int:
        return self._runner.run("count()", lambda: self._client.count(where))

    def queues(self, prefix: str | None = None) -> list[str]:
        return self._runner.run("queues()", lambda: self._client.queues(prefix))

    def search_and_lock(
        self,
        where: Condition | None = None,
        *,
        limit: int = 100,
        requester: str | None = None,
        order_by: str | Order = "id",
    ) -> list[SyncLockedJob]:
        """Locked jobs; release each (``release()``/``save()``) when done."""
        locked = self._runner.run(
            "search_and_lock()",
            lambda: self._client.search_and_lock(where, limit=limit, requester=requester, order_by=order_by),
        )
        return [SyncLockedJob(job, self._runner) for job in locked]

    def change_state_where(
        self, where: Condition | None, state: State, *, batch_size: int = 500, requester: str | None = None
    ) -> BulkResult:
        return self._runner.run(
            "change_state_where()",
            lambda: self._client.change_state_where(where, state, batch_size=batch_size, requester=requester),
        )

    def requeue_where(
        self,
        where: Condition | None,
        *,
        queue: str | None = None,
        priority: Priority | int | str | None = None,
        batch_size: int = 500,
        requester: str | None = None,
    ) -> BulkResult:
        return self._runner.run(
            "requeue_where()",
            lambda: self._client.requeue_where(
                where, queue=queue, priority=priority, batch_size=batch_size, requester=requester
            ),
        )

    def delete_where(
        self, where: Condition | None, *, reason: str | None = None, batch_size: int = 500, requester: str | None = None
    ) -> BulkResult:
        return self._runner.run(
            "delete_where()",
            lambda: self._client.delete_where(where, reason=reason, batch_size=batch_size, requester=requester),
        )

    def set_property_where(
        self,
        where: Condition | None,
        name: str,
        value: PropertyValue | None,
        *,
        batch_size: int = 500,
        requester: str | None = None,
    ) -> BulkResult:
        return self._runner.run(
            "set_property_where()",
            lambda: self._client.set_property_where(where, name, value, batch_size=batch_size, requester=requester),
        )

    def try_lock(self, job_id: int, requester: str | None = None) -> SyncLockedJob | None:
        locked = self._runner.run("try_lock()", lambda: self._client.try_lock(job_id, requester))
        return SyncLockedJob(locked, self._runner) if locked is not None else None

    def get_with_lock(self, job_id: int, requester: str | None = None) -> SyncLockedJob:
        locked = self._runner.run("get_with_lock()", lambda: _await(self._client.get_with_lock(job_id, requester)))
        return SyncLockedJob(locked, self._runner)

    def wait_for_lock(
        self,
        job_id: int,
        requester: str | None = None,
        *,
        timeout: timedelta | float = 30.0,
        poll_interval: timedelta | float | None = None,
    ) -> SyncLockedJob:
        locked = self._runner.run(
            "wait_for_lock()",
            lambda: self._client.wait_for_lock(job_id, requester, timeout=timeout, poll_interval=poll_interval),
        )
        return SyncLockedJob(locked, self._runner)

    def change_state(self, job_id: int, state: State, *, requester: str | None = None) -> bool:
        return self._runner.run("change_state()", lambda: self._client.change_state(job_id, state, requester=requester))

    def cancel(self, job_id: int, *, reason: str | None = None, requester: str | None = None) -> CancelResult:
        return self._runner.run("cancel()", lambda: self._client.cancel(job_id, reason=reason, requester=requester))

    def delete(self, job_id: int, *, reason: str | None = None, requester: str | None = None) -> DeleteResult:
        return self._runner.run("delete()", lambda: self._client.delete(job_id, reason=reason, requester=requester))

    def set_data(self, job_id: int, name: str, value: object) -> None:
        self._runner.run("set_data()", lambda: self._client.set_data(job_id, name, value))

    def get_data(self, job_id: int, name: str, type_hint: Any = Any) -> Any:
        return self._runner.run("get_data()", lambda: self._client.get_data(job_id, name, type_hint))

    def try_get_data(self, job_id: int, name: str, type_hint: Any = Any, *, default: Any = None) -> Any:
        return self._runner.run(
            "try_get_data()", lambda: self._client.try_get_data(job_id, name, type_hint, default=default)
        )

    def add_log(
        self,
        job_id: int,
        message: str,
        *,
        level: int = 20,
        logger: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        self._runner.run(
            "add_log()", lambda: self._client.add_log(job_id, message, level=level, logger=logger, exception=exception)
        )

    def get_logs(self, job_id: int, *, min_level: int = 0, after_id: int = 0, limit: int = 1000) -> list[JobLogEntry]:
        return self._runner.run(
            "get_logs()", lambda: self._client.get_logs(job_id, min_level=min_level, after_id=after_id, limit=limit)
        )


class SyncRecurringJobClient:
    """Blocking counterpart of :class:`~hivemind_jobs.RecurringJobClient` (same method names)."""

    def __init__(self, client: RecurringJobClient, runner: _Runner) -> None:
        self._client = client
        self._runner = runner

    @property
    def calendars(self) -> CalendarRegistry:
        return self._client.calendars

    def options(self, **options: Any) -> SyncRecurringJobClient:
        """The same keywords as :meth:`RecurringJobClient.options`."""
        return SyncRecurringJobClient(self._client.options(**options), self._runner)

    def create_or_update(
        self, recurring_id: str, schedule: Schedule, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> bool:
        return self._runner.run(
            "create_or_update()",
            lambda: self._client.create_or_update(recurring_id, schedule, function, *args, **kwargs),
        )

    def get(self, recurring_id: str) -> RecurringJob:
        return self._runner.run("get()", lambda: self._client.get(recurring_id))

    def try_get(self, recurring_id: str) -> RecurringJob | None:
        return self._runner.run("try_get()", lambda: self._client.try_get(recurring_id))

    def list(self, *, prefix: str | None = None, state: str | None = None) -> builtins.list[RecurringJob]:
        return self._runner.run("list()", lambda: self._client.list(prefix=prefix, state=state))

    def search(self, where: Condition | None = None, *, order_by: str = "id") -> builtins.list[RecurringJob]:
        return self._runner.run("search()", lambda: self._client.search(where, order_by=order_by))

    def count(self, where: Condition | None = None) -> int:
        return self._runner.run("count()", lambda: self._client.count(where))

    def history(self, recurring_id: str, *, kind: Any = None, limit: int = 100) -> builtins.list[RecurringEventRecord]:
        return self._runner.run("history()", lambda: self._client.history(recurring_id, kind=kind, limit=limit))

    def pause(self, recurring_id: str, *, reason: str | None = None) -> bool:
        return self._runner.run("pause()", lambda: self._client.pause(recurring_id, reason=reason))

    def resume(self, recurring_id: str) -> bool:
        return self._runner.run("resume()", lambda: self._client.resume(recurring_id))

    def trigger(self, recurring_id: str) -> int:
        return self._runner.run("trigger()", lambda: self._client.trigger(recurring_id))

    def delete(self, recurring_id: str) -> bool:
        return self._runner.run("delete()", lambda: self._client.delete(recurring_id))


class SyncTransaction:
    """Blocking counterpart of :class:`~hivemind_jobs.Transaction`: ``with hive.transaction() as tx:``."""

    def __init__(self, transaction: Transaction, runner: _Runner) -> None:
        self._transaction = transaction
        self._runner = runner

    @property
    def jobs(self) -> SyncBackgroundJobClient:
        return SyncBackgroundJobClient(self._transaction.jobs, self._runner)

    @property
    def recurring(self) -> SyncRecurringJobClient:
        return SyncRecurringJobClient(self._transaction.recurring, self._runner)

    def commit(self) -> None:
        self._runner.run("commit()", self._transaction.commit)

    def rollback(self) -> None:
        self._runner.run("rollback()", self._transaction.rollback)

    def __enter__(self) -> SyncTransaction:
        self._runner.run("entering a transaction", self._transaction.__aenter__)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._runner.run("leaving a transaction", lambda: self._transaction.__aexit__(exc_type, exc, tb))


class SyncEnvironment:
    def __init__(self, environment: Environment, runner: _Runner) -> None:
        self._environment = environment
        self._runner = runner

    @property
    def name(self) -> str:
        return self._environment.name

    @property
    def options(self) -> Options:
        return self._environment.options

    @property
    def mediator(self) -> Mediator:
        return self._environment.mediator

    @property
    def jobs(self) -> SyncBackgroundJobClient:
        return SyncBackgroundJobClient(self._environment.jobs, self._runner)

    @property
    def recurring(self) -> SyncRecurringJobClient:
        return SyncRecurringJobClient(self._environment.recurring, self._runner)

    def transaction(self) -> SyncTransaction:
        return SyncTransaction(self._environment.transaction(), self._runner)


class SyncHiveMind:
    """Blocking counterpart of :class:`~hivemind_jobs.HiveMind` (same constructor and names).

    Open it with ``with SyncHiveMind() as hive:`` (or :meth:`open`/:meth:`close`).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        environment: str = DEFAULT_ENVIRONMENT,
        options: Options | None = None,
        table_prefix: str | None = None,
        activator: Activator | None = None,
        clock: Clock | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.hive = HiveMind(
            url,
            environment=environment,
            options=options,
            table_prefix=table_prefix,
            activator=activator,
            clock=clock,
            codec=codec,
        )
        self._runner: _LoopThread | None = None

    @property
    def mediator(self) -> Mediator:
        return self.hive.mediator

    def _loop(self) -> _LoopThread:
        if self._runner is None:
            raise StorageClosedError("the SyncHiveMind is not open; use `with SyncHiveMind() as hive:`")
        return self._runner

    def add_environment(
        self, name: str, url: str, *, options: Options | None = None, table_prefix: str | None = None
    ) -> SyncEnvironment:
        environment = self.hive.add_environment(name, url, options=options, table_prefix=table_prefix)
        if self._runner is not None:
            self._runner.run("add_environment()", environment.open)
            return SyncEnvironment(environment, self._runner)
        return SyncEnvironment(environment, _PendingRunner(self))

    def env(self, name: str | None = None) -> SyncEnvironment:
        return SyncEnvironment(self.hive.env(name), self._loop())

    @property
    def jobs(self) -> SyncBackgroundJobClient:
        return SyncBackgroundJobClient(self.hive.jobs, self._loop())

    @property
    def recurring(self) -> SyncRecurringJobClient:
        return SyncRecurringJobClient(self.hive.recurring, self._loop())

    def transaction(self, environment: str | None = None) -> SyncTransaction:
        return SyncTransaction(self.hive.transaction(environment), self._loop())

    def open(self) -> None:
        if self._runner is not None:
            return
        runner = _LoopThread()
        try:
            runner.run("open()", self.hive.open)
        except BaseException:
            runner.close()
            raise
        self._runner = runner

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            runner.run("close()", self.hive.close)
        finally:
            runner.close()

    def __enter__(self) -> SyncHiveMind:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _PendingRunner:
    """Runner for environments added before open(): it uses the hive's loop once it is open."""

    def __init__(self, owner: SyncHiveMind) -> None:
        self._owner = owner

    def run(self, what: str, coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self._owner._loop().run(what, coroutine_factory)
