"""The blocking facade: the same names as the async API, for code without an event loop.

``SyncHiveMind`` runs a :class:`~hivemind_jobs.HiveMind` on a private event loop in a background
thread; every call blocks until that loop has done the work. Calling it from inside a running
event loop is refused (it would freeze that loop): use the async API there.

    with SyncHiveMind() as hive:
        job_id = hive.jobs.create(send_report, "weekly")
        with hive.jobs.get_with_lock(job_id) as job:
            job.change_state(Idle())
            job.save()

Each blocking class wraps one async object. A member that only passes a call on is not written
out here but made from the async member itself (:func:`_blocking`, :func:`_forwarded`,
:func:`_chaining`): it has the async member's parameters, defaults, overloads and docstring, so the
two cannot drift apart, and the type checker sees the async signature returning the awaited result
(or the blocking counterpart of a returned handle). The members written out by hand (properties,
context managers, the few with their own logic) are held to the async API by
``tests/unit/test_sync_parity.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import timedelta
from types import MappingProxyType, TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from hivemind_jobs.client.colonies import ColonyClient
from hivemind_jobs.client.context import JobContext
from hivemind_jobs.client.jobs import BackgroundJobClient, CreateOptions, JobCall, JobRef
from hivemind_jobs.client.jobs import P as JobP  # the twin's overloads use the async member's own variables
from hivemind_jobs.client.jobs import R as JobR
from hivemind_jobs.client.locked import LockedJob
from hivemind_jobs.client.queues import QueueClient
from hivemind_jobs.client.search import LockedJobs
from hivemind_jobs.core.clock import Clock
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.hooks import CreateHook
from hivemind_jobs.core.invocation import Activator, Invocation
from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.names import DEFAULT_ENVIRONMENT
from hivemind_jobs.core.options import Options
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.states import State
from hivemind_jobs.environment import Environment, Transaction
from hivemind_jobs.errors import StorageClosedError, SyncFacadeError
from hivemind_jobs.hive import DEFAULT_URL, HiveMind, dashboard_factory
from hivemind_jobs.lifecycle.services import EnvironmentServices
from hivemind_jobs.mediator import Mediator
from hivemind_jobs.middleware.protocol import JobMiddleware
from hivemind_jobs.recurring.calendars import CalendarRegistry
from hivemind_jobs.recurring.client import RecurringJobClient
from hivemind_jobs.storage.protocol import StorageInfo

__all__ = [
    "SyncBackgroundJobClient",
    "SyncColonyClient",
    "SyncEnvironment",
    "SyncHiveMind",
    "SyncJobRef",
    "SyncLockedJob",
    "SyncLockedJobs",
    "SyncQueueClient",
    "SyncRecurringJobClient",
    "SyncTransaction",
]

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A")  # what an async member returns
H = TypeVar("H")  # the blocking handle made of it
W = TypeVar("W")  # the async object a blocking class wraps
F = TypeVar("F", bound="_Facade[Any]")

#: on a made member: the async member it passes calls on to
_TWIN_OF = "__hivemind_twin_of__"
#: on a made member: it returns a blocking object of its own class (set when the class is made)
_RETURNS_OWNER = "__hivemind_returns_owner__"


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

    def submit(self, coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        """Start ``coroutine_factory()`` on this loop without waiting (for callers on other loops)."""
        if self._closed:
            raise StorageClosedError("this SyncHiveMind is closed")
        return asyncio.run_coroutine_threadsafe(coroutine_factory(), self._loop)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# ----------------------------------------------------------------------------- made members


def _returned_type(handle: Callable[..., Any]) -> Any:
    """What a handle maker returns, for the made member's annotations: the class itself, or the
    (evaluated) return annotation of a maker function such as :func:`_optional`'s."""
    return handle if isinstance(handle, type) else handle.__annotations__["return"]


def _twin(made: Callable[..., Any], method: Callable[..., Any], returns: Any = inspect.Parameter.empty) -> None:
    """Give ``made`` the identity of ``method`` (name, docstring, annotations, signature); with
    ``returns``, another result type."""
    functools.update_wrapper(made, method)
    made.__doc__ = f"Blocking twin of :meth:`~{method.__module__}.{method.__qualname__}`." + (
        f"\n\n{inspect.cleandoc(method.__doc__)}" if method.__doc__ else ""
    )
    setattr(made, _TWIN_OF, method)
    if returns is not inspect.Parameter.empty:
        _set_returned_type(made, returns)


def _set_returned_type(made: Callable[..., Any], returns: Any) -> None:
    made.__annotations__ = {**made.__annotations__, "return": returns}  # a copy: the async member keeps its own
    signature = inspect.signature(getattr(made, _TWIN_OF)).replace(return_annotation=returns)
    setattr(made, "__signature__", signature)  # noqa: B010 - a function object, typed as a plain Callable


@overload
def _blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]], /
) -> Callable[Concatenate[_Facade[Any], P], T]: ...
@overload
def _blocking(
    method: Callable[Concatenate[Any, P], Awaitable[A]], handle: Callable[[A, _Runner], H], /
) -> Callable[Concatenate[_Facade[Any], P], H]: ...
def _blocking(method: Callable[..., Any], handle: Callable[[Any, _Runner], Any] | None = None, /) -> Any:
    """The blocking twin of an async method: it awaits the call on the facade's loop and returns
    the result, or ``handle(result, runner)`` (the blocking counterpart of a returned object)."""
    name = method.__name__
    if handle is None and not inspect.iscoroutinefunction(method):
        raise TypeError(f"{method.__qualname__} is not a coroutine function; give the handle its result becomes")

    def blocking(self: _Facade[Any], /, *args: Any, **kwargs: Any) -> Any:
        target, runner = self._target, self._runner

        async def call() -> Any:
            return await getattr(target, name)(*args, **kwargs)

        result = runner.run(f"{name}()", call)
        return result if handle is None else handle(result, runner)

    _twin(blocking, method, inspect.Parameter.empty if handle is None else _returned_type(handle))
    return blocking


@overload
def _forwarded(method: Callable[Concatenate[Any, P], T], /) -> Callable[Concatenate[_Facade[Any], P], T]: ...
@overload
def _forwarded(
    method: Callable[Concatenate[Any, P], A], handle: Callable[[A, _Runner], H], /
) -> Callable[Concatenate[_Facade[Any], P], H]: ...
def _forwarded(method: Callable[..., Any], handle: Callable[[Any, _Runner], Any] | None = None, /) -> Any:
    """The twin of a plain (not async) method: called in the caller's thread, its result returned
    as is or as ``handle(result, runner)``."""
    name = method.__name__

    def forwarded(self: _Facade[Any], /, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self._target, name)(*args, **kwargs)
        return result if handle is None else handle(result, self._runner)

    _twin(forwarded, method, inspect.Parameter.empty if handle is None else _returned_type(handle))
    return forwarded


def _chaining(method: Callable[Concatenate[Any, P], object], /) -> Callable[Concatenate[F, P], F]:
    """The twin of a plain method returning another client like its own (``options(...)``): the
    result is wrapped in the blocking class the twin is called on."""
    name = method.__name__

    def chaining(self: F, /, *args: P.args, **kwargs: P.kwargs) -> F:
        return type(self)(getattr(self._target, name)(*args, **kwargs), self._runner)

    _twin(chaining, method)
    setattr(chaining, _RETURNS_OWNER, True)
    return chaining


def _optional(handle: Callable[[A, _Runner], H]) -> Callable[[A | None, _Runner], H | None]:
    """A handle maker that passes None through (``try_lock`` finds the job locked)."""

    def optional(result: A | None, runner: _Runner) -> H | None:
        return None if result is None else handle(result, runner)

    optional.__annotations__ = {"return": _returned_type(handle) | None}
    return optional


class _Facade(Generic[W]):
    """A blocking class over one async object, whose calls ``runner`` runs on the facade's loop."""

    def __init__(self, target: W, runner: _Runner) -> None:
        self._target = target
        self._runner = runner

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in vars(cls).items():
            method = getattr(member, _TWIN_OF, None)
            if method is None:
                continue
            if method.__name__ != name:
                raise TypeError(f"{cls.__qualname__}.{name} is made from {method.__qualname__}: a twin keeps its name")
            member.__qualname__ = f"{cls.__qualname__}.{name}"
            member.__module__ = cls.__module__
            if getattr(member, _RETURNS_OWNER, False):
                _set_returned_type(member, cls)


# ----------------------------------------------------------------------------- blocking classes


class SyncLockedJob(_Facade[LockedJob]):
    """Blocking counterpart of :class:`~hivemind_jobs.LockedJob`."""

    def __repr__(self) -> str:
        return repr(self._target).replace("<LockedJob", "<SyncLockedJob", 1)

    @property
    def job(self) -> BackgroundJob:
        return self._target.job

    @property
    def id(self) -> int:
        return self._target.id

    @property
    def holder(self) -> str:
        return self._target.holder

    @property
    def is_locked(self) -> bool:
        return self._target.is_locked

    @property
    def state(self) -> State:
        return self._target.state

    @property
    def states(self) -> tuple[State, ...]:
        return self._target.states

    @property
    def queue(self) -> str:
        return self._target.queue

    @property
    def priority(self) -> Priority:
        return self._target.priority

    @property
    def invocation(self) -> Invocation:
        return self._target.invocation

    @property
    def properties(self) -> Any:
        return self._target.properties

    @property
    def has_unsaved_changes(self) -> bool:
        return self._target.has_unsaved_changes

    get_property = _forwarded(LockedJob.get_property)
    set_property = _forwarded(LockedJob.set_property)
    remove_property = _forwarded(LockedJob.remove_property)
    move = _forwarded(LockedJob.move)
    change_state = _blocking(LockedJob.change_state)
    save = _blocking(LockedJob.save)
    heartbeat = _blocking(LockedJob.heartbeat)
    release = _blocking(LockedJob.release)
    get_data = _blocking(LockedJob.get_data)
    try_get_data = _blocking(LockedJob.try_get_data)
    set_data = _blocking(LockedJob.set_data)
    add_log = _blocking(LockedJob.add_log)

    def __enter__(self) -> SyncLockedJob:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._runner.run("leaving a locked job", lambda: self._target.__aexit__(exc_type, exc, tb))


class SyncLockedJobs(list[SyncLockedJob], _Facade[LockedJobs]):
    """Blocking counterpart of :class:`~hivemind_jobs.LockedJobs`: a list of the locked jobs;
    ``with`` releases the locks still held at the end."""

    def __init__(self, locked: LockedJobs, runner: _Runner) -> None:
        super().__init__(SyncLockedJob(job, runner) for job in locked)
        self._target = locked
        self._runner = runner

    def __repr__(self) -> str:
        return repr(self._target).replace("<LockedJobs", "<SyncLockedJobs", 1)

    @property
    def jobs(self) -> list[SyncLockedJob]:
        return self

    @property
    def requester(self) -> str:
        return self._target.requester

    release = _blocking(LockedJobs.release)

    def __enter__(self) -> SyncLockedJobs:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._runner.run("leaving locked jobs", lambda: self._target.__aexit__(exc_type, exc, tb))


class SyncJobRef(_Facade[JobRef[JobR]], Generic[JobR]):
    """Blocking counterpart of :class:`~hivemind_jobs.JobRef`: ``ref.result()`` blocks."""

    def __repr__(self) -> str:
        return repr(self._target).replace("JobRef(", "SyncJobRef(", 1)

    def __int__(self) -> int:
        return self._target.id

    @property
    def id(self) -> int:
        return self._target.id

    @property
    def client(self) -> SyncBackgroundJobClient:
        return SyncBackgroundJobClient(self._target.client, self._runner)

    @property
    def result_type(self) -> Any:
        return self._target.result_type

    def result(self, *, timeout: timedelta | float | None = None) -> JobR:
        """Blocking twin of :meth:`~hivemind_jobs.JobRef.result`: the job's result once it succeeded."""
        target = self._target
        return self._runner.run("result()", lambda: target.result(timeout=timeout))


class SyncBackgroundJobClient(_Facade[BackgroundJobClient]):
    """Blocking counterpart of :class:`~hivemind_jobs.BackgroundJobClient` (same method names)."""

    @property
    def environment(self) -> EnvironmentServices:
        return self._target.environment

    @property
    def create_options(self) -> CreateOptions:
        return self._target.create_options

    options = _chaining(BackgroundJobClient.options)
    create = _blocking(BackgroundJobClient.create)

    @overload
    def create_ref(
        self,
        function: Callable[Concatenate[JobContext, JobP], Coroutine[Any, Any, JobR]],
        /,
        *args: JobP.args,
        **kwargs: JobP.kwargs,
    ) -> SyncJobRef[JobR]: ...
    @overload
    def create_ref(
        self, function: Callable[JobP, Coroutine[Any, Any, JobR]], /, *args: JobP.args, **kwargs: JobP.kwargs
    ) -> SyncJobRef[JobR]: ...
    @overload
    def create_ref(
        self, function: Callable[Concatenate[JobContext, JobP], JobR], /, *args: JobP.args, **kwargs: JobP.kwargs
    ) -> SyncJobRef[JobR]: ...
    @overload
    def create_ref(
        self, function: Callable[JobP, JobR], /, *args: JobP.args, **kwargs: JobP.kwargs
    ) -> SyncJobRef[JobR]: ...
    def create_ref(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> SyncJobRef[Any]:
        """Blocking twin of :meth:`~hivemind_jobs.BackgroundJobClient.create_ref`: ``ref.result()``
        blocks and is typed as the function's result."""
        ref = self._runner.run("create_ref()", lambda: self._target.create_ref(function, *args, **kwargs))
        return SyncJobRef(ref, self._runner)

    def create_many(self, calls: Iterable[JobCall]) -> list[int]:
        """Create many jobs in one transaction and one storage round trip (all or nothing).

        ``calls`` is read here, in the calling thread, before the facade's loop takes over."""
        items = list(calls)
        return self._runner.run("create_many()", lambda: self._target.create_many(items))

    try_get = _blocking(BackgroundJobClient.try_get)
    get = _blocking(BackgroundJobClient.get)
    wait = _blocking(BackgroundJobClient.wait)
    count_by_state = _blocking(BackgroundJobClient.count_by_state)
    queue_stats = _blocking(BackgroundJobClient.queue_stats)
    search = _blocking(BackgroundJobClient.search)
    count = _blocking(BackgroundJobClient.count)
    search_and_lock = _blocking(BackgroundJobClient.search_and_lock, SyncLockedJobs)
    queues = _blocking(BackgroundJobClient.queues)
    change_state_where = _blocking(BackgroundJobClient.change_state_where)
    requeue_where = _blocking(BackgroundJobClient.requeue_where)
    delete_where = _blocking(BackgroundJobClient.delete_where)
    set_property_where = _blocking(BackgroundJobClient.set_property_where)
    try_lock = _blocking(BackgroundJobClient.try_lock, _optional(SyncLockedJob))
    get_with_lock = _blocking(BackgroundJobClient.get_with_lock, SyncLockedJob)
    wait_for_lock = _blocking(BackgroundJobClient.wait_for_lock, SyncLockedJob)
    change_state = _blocking(BackgroundJobClient.change_state)
    cancel = _blocking(BackgroundJobClient.cancel)
    delete = _blocking(BackgroundJobClient.delete)
    set_data = _blocking(BackgroundJobClient.set_data)
    get_data = _blocking(BackgroundJobClient.get_data)
    try_get_data = _blocking(BackgroundJobClient.try_get_data)
    list_data = _blocking(BackgroundJobClient.list_data)
    count_over_time = _blocking(BackgroundJobClient.count_over_time)
    count_by_queue = _blocking(BackgroundJobClient.count_by_queue)
    add_log = _blocking(BackgroundJobClient.add_log)
    get_logs = _blocking(BackgroundJobClient.get_logs)


class SyncRecurringJobClient(_Facade[RecurringJobClient]):
    """Blocking counterpart of :class:`~hivemind_jobs.RecurringJobClient` (same method names)."""

    @property
    def calendars(self) -> CalendarRegistry:
        return self._target.calendars

    options = _chaining(RecurringJobClient.options)
    create_or_update = _blocking(RecurringJobClient.create_or_update)
    try_get = _blocking(RecurringJobClient.try_get)
    get = _blocking(RecurringJobClient.get)
    list = _blocking(RecurringJobClient.list)
    search = _blocking(RecurringJobClient.search)
    count = _blocking(RecurringJobClient.count)
    history = _blocking(RecurringJobClient.history)
    pause = _blocking(RecurringJobClient.pause)
    resume = _blocking(RecurringJobClient.resume)
    trigger = _blocking(RecurringJobClient.trigger)
    delete = _blocking(RecurringJobClient.delete)
    run_pass = _blocking(RecurringJobClient.run_pass)


class SyncColonyClient(_Facade[ColonyClient]):
    """Blocking counterpart of :class:`~hivemind_jobs.client.colonies.ColonyClient`."""

    try_get = _blocking(ColonyClient.try_get)
    get = _blocking(ColonyClient.get)
    list = _blocking(ColonyClient.list)
    search = _blocking(ColonyClient.search)
    count = _blocking(ColonyClient.count)
    delete_stale = _blocking(ColonyClient.delete_stale)
    daemon_logs = _blocking(ColonyClient.daemon_logs)


class SyncQueueClient(_Facade[QueueClient]):
    """Blocking counterpart of :class:`~hivemind_jobs.client.queues.QueueClient`."""

    pause = _blocking(QueueClient.pause)
    resume = _blocking(QueueClient.resume)
    paused = _blocking(QueueClient.paused)
    is_paused = _blocking(QueueClient.is_paused)


class SyncTransaction(_Facade[Transaction]):
    """Blocking counterpart of :class:`~hivemind_jobs.Transaction`: ``with hive.transaction() as tx:``.

    With ``connection=`` on SQLite, open the ``sqlite3.Connection`` with ``check_same_thread=False``:
    the facade's loop thread runs the job statements on it."""

    @property
    def environment(self) -> SyncEnvironment:
        return SyncEnvironment(self._target.environment, self._runner)

    @property
    def connection(self) -> object | None:
        return self._target.connection

    @property
    def is_active(self) -> bool:
        return self._target.is_active

    @property
    def jobs(self) -> SyncBackgroundJobClient:
        return SyncBackgroundJobClient(self._target.jobs, self._runner)

    @property
    def recurring(self) -> SyncRecurringJobClient:
        return SyncRecurringJobClient(self._target.recurring, self._runner)

    commit = _blocking(Transaction.commit)
    rollback = _blocking(Transaction.rollback)

    def __enter__(self) -> SyncTransaction:
        self._runner.run("entering a transaction", self._target.__aenter__)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._runner.run("leaving a transaction", lambda: self._target.__aexit__(exc_type, exc, tb))


class SyncEnvironment(_Facade[Environment]):
    """Blocking counterpart of :class:`~hivemind_jobs.Environment`."""

    def __repr__(self) -> str:
        return repr(self._target).replace("<Environment", "<SyncEnvironment", 1)

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def options(self) -> Options:
        return self._target.options

    @property
    def mediator(self) -> Mediator:
        return self._target.mediator

    @property
    def codec(self) -> Codec:
        return self._target.codec

    @property
    def clock(self) -> Clock:
        return self._target.clock

    @property
    def activator(self) -> Activator:
        return self._target.activator

    @property
    def create_hooks(self) -> list[CreateHook]:
        """The environment's creation hooks (:mod:`hivemind_jobs.core.hooks`), the same list."""
        return self._target.create_hooks

    @property
    def middleware(self) -> list[JobMiddleware]:
        """The middleware instances every colony of the environment runs outermost, the same list."""
        return self._target.middleware

    @property
    def info(self) -> StorageInfo:
        return self._target.info

    @property
    def jobs(self) -> SyncBackgroundJobClient:
        return SyncBackgroundJobClient(self._target.jobs, self._runner)

    @property
    def recurring(self) -> SyncRecurringJobClient:
        return SyncRecurringJobClient(self._target.recurring, self._runner)

    @property
    def calendars(self) -> CalendarRegistry:
        return self._target.calendars

    @property
    def colonies(self) -> SyncColonyClient:
        return SyncColonyClient(self._target.colonies, self._runner)

    @property
    def queues(self) -> SyncQueueClient:
        return SyncQueueClient(self._target.queues, self._runner)

    transaction = _forwarded(Environment.transaction, SyncTransaction)
    open = _blocking(Environment.open)
    close = _blocking(Environment.close)


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
        gc_freeze: bool = True,
    ) -> None:
        self.hive = HiveMind(
            url,
            environment=environment,
            options=options,
            table_prefix=table_prefix,
            activator=activator,
            clock=clock,
            codec=codec,
            gc_freeze=gc_freeze,
        )
        self._runner: _LoopThread | None = None

    @classmethod
    def from_env(cls, **kwargs: Any) -> SyncHiveMind:
        """Blocking twin of :meth:`HiveMind.from_env`."""
        return cls._around(HiveMind.from_env(**kwargs))

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> SyncHiveMind:
        """Blocking twin of :meth:`HiveMind.from_config`."""
        return cls._around(HiveMind.from_config(path, **kwargs))

    @classmethod
    def _around(cls, hive: HiveMind) -> SyncHiveMind:
        facade = cls.__new__(cls)
        facade.hive = hive
        facade._runner = None
        return facade

    def __repr__(self) -> str:
        return repr(self.hive).replace("<HiveMind", "<SyncHiveMind", 1)

    @property
    def mediator(self) -> Mediator:
        return self.hive.mediator

    @property
    def gc_freeze(self) -> bool:
        return self.hive.gc_freeze

    @property
    def activator(self) -> Activator:
        return self.hive.activator

    @property
    def clock(self) -> Clock:
        return self.hive.clock

    @property
    def codec(self) -> Codec:
        return self.hive.codec

    @property
    def default_environment(self) -> str:
        return self.hive.default_environment

    def _loop(self) -> _LoopThread:
        if self._runner is None:
            raise StorageClosedError("the SyncHiveMind is not open; use `with SyncHiveMind() as hive:`")
        return self._runner

    def add_environment(
        self, name: str, url: str, *, options: Options | None = None, table_prefix: str | None = None
    ) -> SyncEnvironment:
        """Add an isolated environment with its own storage (URL) and options (opened at once when
        this hive is open, else when it opens)."""
        environment = self.hive.add_environment(name, url, options=options, table_prefix=table_prefix)
        if self._runner is not None:
            self._runner.run("add_environment()", environment.open)
            return SyncEnvironment(environment, self._runner)
        return SyncEnvironment(environment, _PendingRunner(self))

    def env(self, name: str | None = None) -> SyncEnvironment:
        return SyncEnvironment(self.hive.env(name), self._loop())

    @property
    def environments(self) -> Mapping[str, SyncEnvironment]:
        runner = self._loop()
        return MappingProxyType({name: SyncEnvironment(env, runner) for name, env in self.hive.environments.items()})

    @property
    def jobs(self) -> SyncBackgroundJobClient:
        return SyncBackgroundJobClient(self.hive.jobs, self._loop())

    @property
    def recurring(self) -> SyncRecurringJobClient:
        return SyncRecurringJobClient(self.hive.recurring, self._loop())

    @property
    def colonies(self) -> SyncColonyClient:
        return SyncColonyClient(self.hive.colonies, self._loop())

    @property
    def queues(self) -> SyncQueueClient:
        return SyncQueueClient(self.hive.queues, self._loop())

    def dashboard(
        self,
        *,
        authorize: Callable[[Any], bool | Awaitable[bool]] | None = None,
        read_only: bool | None = None,
        title: str = "HiveMind",
    ) -> Any:
        """Blocking twin of :meth:`HiveMind.dashboard`: the ASGI app runs on the server's loop and
        reads through this facade's own loop (open the facade before serving requests)."""

        async def on_facade_loop(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
            return await asyncio.wrap_future(self._loop().submit(factory))

        return dashboard_factory()(
            self.hive, authorize=authorize, read_only=read_only, title=title, runner=on_facade_loop
        )

    def transaction(self, environment: str | None = None, *, connection: object | None = None) -> SyncTransaction:
        """``with hive.transaction() as tx:`` - calls through ``tx.jobs`` commit together.

        ``connection``: write the jobs in the application's own open transaction on that connection
        instead (on SQLite a ``sqlite3.Connection`` opened with ``check_same_thread=False``, since
        the facade's loop thread uses it)."""
        return SyncTransaction(self.hive.transaction(environment, connection=connection), self._loop())

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

    def close(self, timeout: float | None = None) -> None:
        """Close every environment's storage and the facade's loop; with ``timeout`` (seconds) the
        storages' close ends within it even when a database does not answer."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            runner.run("close()", lambda: self.hive.close(timeout))
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
