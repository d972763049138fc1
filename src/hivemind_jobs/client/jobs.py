"""The background-job client: create, read, lock, transition, cancel and delete jobs.

Creation options live in their own namespace, :meth:`BackgroundJobClient.options`, so they never
collide with the job's own arguments, which the type checker checks against the function::

    await jobs.create(send_invoice, invoice_id, reminder=True)
    await jobs.options(queue="billing", priority=Priority.HIGH, delay=timedelta(minutes=5)).create(
        send_invoice, invoice_id
    )
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import time
import traceback
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.client.events import MediatorEvents
from hivemind_jobs.client.locked import LockAttempt, LockedJob
from hivemind_jobs.client.search import BulkResult, JobPage, LockedJobs
from hivemind_jobs.client.unique import Unique, unique_key
from hivemind_jobs.client.waiting import result_waiters
from hivemind_jobs.core.clock import utc
from hivemind_jobs.core.codec import load_json
from hivemind_jobs.core.continuations import After
from hivemind_jobs.core.hooks import JobCreation
from hivemind_jobs.core.ids import new_execution_key
from hivemind_jobs.core.invocation import Invocation, build_invocation
from hivemind_jobs.core.job import BackgroundJob, Middleware, MiddlewareEntry, PropertyValue, property_type_of
from hivemind_jobs.core.names import (
    DEFAULT_QUEUE,
    validate_data_name,
    validate_property_name,
    validate_queue_name,
    validate_requester,
    validate_state_name,
)
from hivemind_jobs.core.priority import Priority, coerce_priority
from hivemind_jobs.core.retry import RETRY_POLICY_PROPERTY, RetryPolicy
from hivemind_jobs.core.states import (
    Awaiting,
    Created,
    Deleted,
    Enqueued,
    Executing,
    Failed,
    Idle,
    State,
    Succeeded,
    SystemDeleted,
    SystemDeleting,
    is_final_state,
)
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.core.throttle import JobLimits, Limit, RateLimit, job_limits
from hivemind_jobs.core.timeouts import TIMEOUT_PROPERTY, timeout_seconds, validate_timeout
from hivemind_jobs.errors import (
    ConfigurationError,
    DuplicateJobError,
    InvalidTransitionError,
    JobDataNotFoundError,
    JobDeletedError,
    JobFailedError,
    JobLockedError,
    JobLockTimeoutError,
    JobNotFoundError,
    JobNotSucceededError,
    JobWaitTimeoutError,
    QueryError,
    TransactionError,
)
from hivemind_jobs.lifecycle.changes import created, move, set_property
from hivemind_jobs.lifecycle.machine import (
    creation_observed,
    elect,
    insert_new,
    release_lock,
    save_locked,
    save_locked_many,
    save_new,
)
from hivemind_jobs.lifecycle.records import NewJobs, encode_state_fields, job_from_record, state_from_row
from hivemind_jobs.lifecycle.services import EnvironmentServices, TransactionBase
from hivemind_jobs.lifecycle.unit import Outside, UnitOfWork
from hivemind_jobs.mediator.mediator import handlers_epoch
from hivemind_jobs.query.conditions import Condition, TargetKind, check_text, target_kinds
from hivemind_jobs.query.conditions import job as job_target
from hivemind_jobs.query.conditions import where as all_of
from hivemind_jobs.query.order import MAX_LOCK, MAX_PAGE, Order, decode_cursor, encode_cursor, parse_order
from hivemind_jobs.storage import Transaction as StorageTransaction
from hivemind_jobs.storage.protocol import (
    JobActionInsert,
    JobDataGet,
    JobDataList,
    JobDataSet,
    JobGet,
    JobInsert,
    JobLimitSet,
    JobLogList,
    JobLogRow,
    JobQueues,
    JobRecord,
    JobSearch,
    JobStateHistogram,
    JobStateSince,
    JobUniqueRecord,
    JobUniqueSet,
    PendingInserts,
    QueueStat,
    StateRow,
    UpdateOutcome,
)

__all__ = [
    "BackgroundJobClient",
    "CancelResult",
    "CreateOptions",
    "DeleteResult",
    "JobCall",
    "JobLogEntry",
    "JobRef",
    "call",
]

P = ParamSpec("P")
T = TypeVar("T")
D = TypeVar("D")
R = TypeVar("R")
#: marks an option that was not passed (None is a meaningful value for several options)
UNSET: Any = object()
_MAX_LOG_PAGE = 10_000


# ----------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class CreateOptions:
    """How new jobs are created; see :meth:`BackgroundJobClient.options`."""

    queue: str = DEFAULT_QUEUE
    priority: Priority = Priority.NORMAL
    delay: timedelta | None = None
    delay_until: datetime | None = None
    after: After | None = None
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    middleware: tuple[Middleware, ...] = ()
    state: State | None = None
    retry: RetryPolicy | None = None
    timeout: timedelta | None = None
    unique: Unique | None = None
    concurrency: Limit | None = None
    rate_limit: RateLimit | None = None

    def initial_state(self) -> State:
        if self.state is not None:
            return dataclasses.replace(self.state)  # a fresh object: a state is applied once
        if self.after is not None:
            return Awaiting(
                parent_id=self.after.parent_id,
                on_states=self.after.on_states(),
                delete_on_other_state=self.after.delete_on_other_state,
                delay=self.after.delay,
            )
        if self.delay is not None:
            # kept relative: storage measures it on the database clock, not this process's
            return Enqueued(delay=self.delay)
        if self.delay_until is not None:
            return Enqueued(delay_until=self.delay_until)
        return Enqueued()


class CancelResult(Enum):
    CANCELLED = "cancelled"  # the job was not running: it is Idle now
    REQUESTED = "requested"  # the job is running: its drone was asked to stop it
    NOT_CANCELLABLE = "not_cancellable"  # the job has already finished (or is idle)


class DeleteResult(Enum):
    DELETED = "deleted"
    REQUESTED = "requested"  # the job is running: its drone was asked to stop and delete it
    ALREADY_DELETED = "already_deleted"


@dataclass(frozen=True, slots=True)
class JobLogEntry:
    id: int
    job_id: int
    level: int
    message: str
    logger: str | None
    exception_type: str | None
    exception_message: str | None
    traceback: str | None
    created_at: datetime

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)


@dataclass(frozen=True, slots=True)
class JobCall:
    """A job to create with :meth:`BackgroundJobClient.create_many`; build it with :func:`call`."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@overload
def call(function: Callable[Concatenate[JobContext, P], Any], /, *args: P.args, **kwargs: P.kwargs) -> JobCall: ...
@overload
def call(function: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> JobCall: ...
def call(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JobCall:
    """A type-checked job call for :meth:`BackgroundJobClient.create_many`."""
    return JobCall(function, args, kwargs)


class JobRef(Generic[R]):
    """A job created by :meth:`BackgroundJobClient.create_ref`: its id, and its result typed ``R``
    (what the function returns; for an ``async def``, what it returns when awaited).

    ``await ref.result()`` waits for the job like :meth:`BackgroundJobClient.wait` and decodes the
    result with the function's return annotation, as job arguments are decoded with the parameters'.
    """

    __slots__ = ("client", "id", "result_type")

    def __init__(self, job_id: int, client: BackgroundJobClient, result_type: Any = Any) -> None:
        self.id: int = job_id
        self.client: BackgroundJobClient = client
        #: the hint the result is decoded with (the function's return annotation; Any without one)
        self.result_type: Any = result_type

    def __repr__(self) -> str:
        return f"JobRef(id={self.id})"

    def __int__(self) -> int:
        return self.id

    async def result(self, *, timeout: timedelta | float | None = None) -> R:
        """The job's result once it succeeded; see :meth:`BackgroundJobClient.wait` for the errors."""
        return cast(R, await self.client.wait(self.id, self.result_type, timeout=timeout))


def _function_name(function: Callable[..., Any]) -> str:
    """``module:qualname`` of a job's function as the creation hooks see it (before it is checked)."""
    module = getattr(function, "__module__", None) or "?"
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}:{qualname}"


def _return_hint(function: Callable[..., Any]) -> Any:
    """The return annotation of a job function, resolved (Any when it has none or it cannot be)."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an unresolvable forward reference: the result is decoded without a hint
        return Any
    hint = hints.get("return", Any)
    return Any if hint is None or hint is type(None) else hint


def _wait_seconds(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, int | float) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise ConfigurationError(f"timeout must be seconds (a number), a timedelta or None, got {timeout!r}")
    if not seconds >= 0:
        raise ConfigurationError(f"timeout must not be negative, got {timeout!r}")
    return seconds


class _ImplicitBinding:
    """Binds a client to a storage transaction the client itself opened (for handlers)."""

    def __init__(self, storage_transaction: StorageTransaction, enqueued: set[str]) -> None:
        self.storage_transaction = storage_transaction
        self.enqueued = enqueued


def _check_job_id(job_id: object) -> int:
    if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id <= 0:
        raise ConfigurationError(f"a job id is a positive int, got {job_id!r}")
    return job_id


def _new_requester() -> str:
    return f"client-{uuid.uuid4().hex[:12]}"


def _check_where(where: object) -> Condition | None:
    if where is not None and not isinstance(where, Condition):
        raise QueryError(
            f"expected a query such as hm.where(hm.prop('tenant') == 'acme', hm.state == hm.Failed), got {where!r}"
        )
    if where is not None and target_kinds(where) & {TargetKind.COLONY, TargetKind.COLONY_PROPERTY, TargetKind.DAEMON}:
        raise QueryError("colony conditions go to hive.colonies.search(...), not to a job search")
    if where is not None and target_kinds(where) & {TargetKind.RECURRING, TargetKind.RECURRING_PROPERTY}:
        raise QueryError("recurring-job conditions go to hive.recurring.search(...), not to a job search")
    return where


def _check_count(name: str, value: object, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise QueryError(f"{name} must be a whole number from 1 to {maximum}, got {value!r}")
    return value


#: the deepest offset a page may reach; deeper pages continue from a cursor (``after=``)
_MAX_OFFSET = 1_000_000


def _sort_value(record: JobRecord, order: Order) -> Any:
    return getattr(record, order.key)


def _fresh(state: State) -> State:
    """A not yet applied copy of ``state`` (a state object is applied to one job only)."""
    clone = copy.copy(state)
    clone.sequence = -1
    clone.elected_at = None
    return clone


# ----------------------------------------------------------------------------- the client


class BackgroundJobClient:
    """Background jobs of one environment.

    Obtained as ``hive.jobs`` (each call in its own transaction) or ``tx.jobs`` (every call in the
    transaction ``tx``).
    """

    def __init__(
        self,
        environment: EnvironmentServices,
        *,
        transaction: TransactionBase | _ImplicitBinding | None = None,
        options: CreateOptions | None = None,
    ) -> None:
        self._env = environment
        self._binding = transaction
        self._options = options or CreateOptions()
        self._events: MediatorEvents | None = None
        self._new: NewJobs | None = None
        #: whether a handler observes creations, as of the handlers epoch next to it
        self._observed: tuple[int, bool] = (-1, True)

    def __repr__(self) -> str:
        bound = " (in a transaction)" if self._binding is not None else ""
        return f"<BackgroundJobClient environment={self._env.name!r}{bound}>"

    @property
    def environment(self) -> EnvironmentServices:
        return self._env

    @property
    def create_options(self) -> CreateOptions:
        return self._options

    # ------------------------------------------------------------------ scopes
    def _lifecycle_events(self) -> MediatorEvents:
        """The event port of this client's units and elections (handlers are given this client)."""
        events = self._events
        if events is None:
            env = self._env
            events = self._events = MediatorEvents(env.mediator, env.name, self)
        return events

    def _election_scope(self) -> Outside:
        """Elections outside a transaction (in memory), their handlers given this client."""
        return Outside(self._env, self._lifecycle_events())

    @asynccontextmanager
    async def unit_of_work(self, *, implicit: bool = True) -> AsyncIterator[UnitOfWork]:
        """A write transaction as a lifecycle unit of work, its events raised with a client bound to
        it (committed on a clean exit). ``implicit`` (one call's own transaction): its last
        operation may commit in the same round trip; pass False to run several. A client bound to a
        transaction gives units of that transaction: nothing commits at their end."""
        env = self._env
        if self._binding is not None:
            yield UnitOfWork(
                env, self._binding.storage_transaction, self._lifecycle_events(), enqueued=self._binding.enqueued
            )
            return
        enqueued: set[str] = set()
        async with env.storage.transaction() as storage_tx:
            bound = BackgroundJobClient(env, transaction=_ImplicitBinding(storage_tx, enqueued), options=self._options)
            yield UnitOfWork(env, storage_tx, bound._lifecycle_events(), implicit=implicit, enqueued=enqueued)
        if enqueued:
            env.wake(enqueued)

    @asynccontextmanager
    async def _read_scope(self) -> AsyncIterator[StorageTransaction]:
        if self._binding is not None:
            yield self._binding.storage_transaction
            return
        async with self._env.storage.transaction(readonly=True) as storage_tx:
            yield storage_tx

    # ------------------------------------------------------------------ options
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
        retry: RetryPolicy | None = UNSET,
        timeout: timedelta | None = UNSET,
        unique: Unique | None = UNSET,
        concurrency: Limit | None = UNSET,
        rate_limit: RateLimit | None = UNSET,
    ) -> BackgroundJobClient:
        """A client that creates jobs with these options (merged over this client's).

        ``delay``/``delay_until`` create the job Enqueued but not fetched before then; ``after``
        creates it Awaiting a parent; ``state`` creates it in any other state (``Idle()`` ...).
        ``retry`` overrides the environment's retry policy for these jobs (its numbers; fatal error
        types always come from the environment's policy). ``timeout`` bounds each run of these
        jobs (over the swarm's and the environment's timeout; None: theirs apply). ``unique``
        creates at most one job per key (see :class:`Unique`): a second create answers the
        existing job's id. ``concurrency`` (:class:`Limit`) and ``rate_limit`` (:class:`RateLimit`)
        bound how many jobs sharing a key run at once and start per period, across colonies (over
        the environment's ``Options.queue_limits``); a job over a limit waits, Enqueued.
        """
        current = self._options
        changes: dict[str, Any] = {}
        if queue is not UNSET:
            changes["queue"] = validate_queue_name(queue)
        if priority is not UNSET:
            changes["priority"] = coerce_priority(priority)
        if delay is not UNSET:
            if delay is not None and (not isinstance(delay, timedelta) or delay < timedelta(0)):
                raise ConfigurationError(f"delay must be a non-negative timedelta, got {delay!r}")
            changes["delay"] = delay
        if delay_until is not UNSET:
            if delay_until is not None:
                if not isinstance(delay_until, datetime):
                    raise ConfigurationError(f"delay_until must be a datetime, got {delay_until!r}")
                try:
                    delay_until = utc(delay_until)
                except ValueError as error:
                    raise ConfigurationError(f"delay_until: {error}") from None
            changes["delay_until"] = delay_until
        if after is not UNSET:
            if after is not None and not isinstance(cast(object, after), After):
                raise ConfigurationError(f"after must be hivemind_jobs.After(parent_id, on=...), got {after!r}")
            changes["after"] = after
        if properties is not UNSET:
            merged = dict(current.properties)
            for name, value in (properties or {}).items():
                validate_property_name(name)
                if value is None:
                    merged.pop(name, None)
                    continue
                property_type_of(name, value)
                merged[name] = utc(value) if isinstance(value, datetime) else value
            changes["properties"] = merged
        if middleware is not UNSET:
            entries = tuple(middleware or ())
            for entry in entries:
                MiddlewareEntry.from_spec(entry, self._env.codec)  # validate now
            changes["middleware"] = current.middleware + entries
        if state is not UNSET:
            if state is not None and not isinstance(state, State):
                raise ConfigurationError(f"state must be a State instance such as Idle(), got {state!r}")
            if isinstance(state, Created):
                raise ConfigurationError("jobs always start in Created; pass the state to move to after it")
            changes["state"] = state
        if retry is not UNSET:
            if retry is not None and not isinstance(retry, RetryPolicy):
                raise ConfigurationError(f"retry must be hivemind_jobs.RetryPolicy(...), got {retry!r}")
            changes["retry"] = retry
        if timeout is not UNSET:
            changes["timeout"] = validate_timeout(timeout, "timeout")
        if unique is not UNSET:
            if unique is not None and not isinstance(unique, Unique):
                raise ConfigurationError(f"unique must be hivemind_jobs.Unique(...), got {unique!r}")
            changes["unique"] = unique
        if concurrency is not UNSET:
            if concurrency is not None and not isinstance(concurrency, Limit):
                raise ConfigurationError(f"concurrency must be hivemind_jobs.Limit(max=...), got {concurrency!r}")
            changes["concurrency"] = concurrency
        if rate_limit is not UNSET:
            if rate_limit is not None and not isinstance(rate_limit, RateLimit):
                raise ConfigurationError(
                    f"rate_limit must be hivemind_jobs.RateLimit(max=..., per=...), got {rate_limit!r}"
                )
            changes["rate_limit"] = rate_limit
        options = dataclasses.replace(current, **changes)
        chosen = [
            name
            for name, value in (
                ("delay", options.delay),
                ("delay_until", options.delay_until),
                ("after", options.after),
                ("state", options.state),
            )
            if value is not None
        ]
        if len(chosen) > 1:
            raise ConfigurationError(
                f"options {' and '.join(chosen)} both decide the initial state; use only one of delay, "
                "delay_until, after and state"
            )
        return BackgroundJobClient(self._env, transaction=self._binding, options=options)

    # ------------------------------------------------------------------ creation
    def _invocation(self, function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Invocation:
        env = self._env
        invocation = build_invocation(function, args, kwargs, env.codec, (JobContext,))
        env.options.limits.check_arguments(invocation)  # before any write: nothing is stored when too large
        return invocation

    def _build(self, function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> BackgroundJob:
        env = self._env
        invocation = self._invocation(function, args, kwargs)
        options = self._options
        job = BackgroundJob(
            environment=env.name,
            job_id=None,
            queue=options.queue,
            priority=options.priority,
            invocation=invocation,
            execution_id=new_execution_key(),
            states=(),
            properties=self._job_properties(),
            middleware=[MiddlewareEntry.from_spec(entry, env.codec) for entry in options.middleware],
            created_at=None,
            modified_at=None,
            lock=None,
        )
        return created(job, env.clock.now())

    def _job_properties(self) -> Mapping[str, PropertyValue]:
        options = self._options
        if options.retry is None and options.timeout is None:
            return options.properties
        properties = dict(options.properties)
        if options.retry is not None:
            properties[RETRY_POLICY_PROPERTY] = options.retry.to_json()
        if options.timeout is not None:
            properties[TIMEOUT_PROPERTY] = timeout_seconds(options.timeout)
        return properties

    def _new_jobs(self) -> NewJobs | None:
        """How jobs are created without electing each one, or None when the full path must run: a
        handler observes creations (elections, applied states, saves), or the jobs wait for a parent."""
        epoch, observed = self._observed
        if epoch != handlers_epoch():
            epoch = handlers_epoch()
            observed = creation_observed(self._lifecycle_events())
            self._observed = (epoch, observed)
        if observed:
            return None
        new = self._new
        if new is None:
            options = self._options
            state = options.initial_state()
            if isinstance(state, Awaiting):
                return None
            env = self._env
            new = self._new = NewJobs(
                queue=options.queue,
                priority=options.priority,
                state=state,
                properties=self._job_properties(),
                middleware=[MiddlewareEntry.from_spec(entry, env.codec) for entry in options.middleware],
                codec=env.codec,
            )
        return new

    @overload
    async def create(
        self, function: Callable[Concatenate[JobContext, P], Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> int: ...
    @overload
    async def create(self, function: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> int: ...
    async def create(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> int:
        """Create a job that runs ``function(*args, **kwargs)``; returns its id.

        The arguments are bound and checked against the signature and type hints first: nothing is
        written when they do not fit, or when their JSON is over ``Limits.max_argument_bytes``
        (LimitExceededError). A parameter annotated :class:`JobContext` is injected at execution
        and is not passed here.
        """
        if self._env.create_hooks:
            return (await self._create_hooked([JobCall(function, args, kwargs)], one=True))[0]
        return await self._create_one(function, args, kwargs)

    async def _create_one(self, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        if self._options.unique is not None or self._limited():
            return (await self._create_controlled([JobCall(function, args, kwargs)]))[0]
        new = self._new_jobs()
        if new is None:
            return (await self._create([self._build(function, args, kwargs)]))[0]
        rows = new.inserts((self._invocation(function, args, kwargs),), self._env.clock.now())
        return (await self._insert_new(new, rows))[0]

    async def _create_hooked(self, calls: list[JobCall], *, one: bool) -> list[int]:
        """Create ``calls`` inside the environment's creation hooks (:mod:`hivemind_jobs.core.hooks`):
        the properties they add are stored with every job, and they see the ids or the error."""
        env = self._env
        creation = JobCreation(env.name, self._options.queue, tuple(_function_name(call.function) for call in calls))
        with contextlib.ExitStack() as hooks:
            for hook in env.create_hooks:
                hooks.enter_context(hook(creation))
            client = self
            if creation.properties:
                properties = {**self._options.properties, **creation.properties}
                options = dataclasses.replace(self._options, properties=properties)
                client = BackgroundJobClient(env, transaction=self._binding, options=options)
                new = self._new_jobs()
                if new is not None:  # this client's rows with the hooks' properties: no new checks
                    client._new = new.with_properties(creation.properties)
            if one:
                ids = [await client._create_one(calls[0].function, calls[0].args, calls[0].kwargs)]
            else:
                ids = await client._create_many(calls)
            creation.ids.extend(ids)
        return ids

    @overload
    async def create_ref(
        self,
        function: Callable[Concatenate[JobContext, P], Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> JobRef[R]: ...
    @overload
    async def create_ref(
        self, function: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> JobRef[R]: ...
    @overload
    async def create_ref(
        self, function: Callable[Concatenate[JobContext, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> JobRef[R]: ...
    @overload
    async def create_ref(self, function: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> JobRef[R]: ...
    async def create_ref(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JobRef[Any]:
        """Like :meth:`create`, but returns a :class:`JobRef` whose ``await ref.result()`` is typed
        as the function's result and decoded with its return annotation."""
        job_id = await self.create(function, *args, **kwargs)
        client = self if self._binding is None else BackgroundJobClient(self._env)
        return JobRef(job_id, client, _return_hint(function))

    async def create_many(self, calls: Iterable[JobCall]) -> list[int]:
        """Create many jobs in one transaction and one storage round trip (all or nothing).

        With the ``unique`` option each job whose key is held (by an existing job or by an earlier
        job of the same batch) answers the holder's id in its place instead of creating a job.
        """
        if self._env.create_hooks:
            return await self._create_hooked(list(calls), one=False)
        return await self._create_many(calls)

    async def _create_many(self, calls: Iterable[JobCall]) -> list[int]:
        if self._options.unique is not None or self._limited():
            return await self._create_controlled(list(calls))
        new = self._new_jobs()
        if new is None:
            jobs = [self._build(item.function, item.args, item.kwargs) for item in calls]
            if not jobs:
                return []
            return await self._create(jobs)
        invocation = self._invocation
        env = self._env
        if self._binding is None and env.storage.capabilities.inserts_in_parts:
            # a transaction of its own: the storage builds the rows as it writes them, so the
            # calls of a part are checked while the part before it is at the database; a bad
            # call rolls back the transaction and writes nothing
            listed = list(calls)  # the caller may change its own list while the parts are written
            if not listed:
                return []
            now = env.clock.now()

            def build(start: int, end: int) -> list[JobInsert]:
                return new.inserts(
                    [invocation(item.function, item.args, item.kwargs) for item in listed[start:end]], now
                )

            most = new.most_bytes(env.options.limits.max_argument_bytes)
            return await self._insert_new(new, PendingInserts(len(listed), build, most))
        stored = [invocation(item.function, item.args, item.kwargs) for item in calls]
        if not stored:
            return []
        return await self._insert_new(new, new.inserts(stored, env.clock.now()))

    async def _insert_new(self, new: NewJobs, rows: Sequence[JobInsert]) -> list[int]:
        """Insert rows built by ``new`` in this client's transaction or in one of their own. Nobody
        observes these creations, so the unit raises no event: it needs no client bound to it."""
        env = self._env
        binding = self._binding
        if binding is not None:
            unit = UnitOfWork(env, binding.storage_transaction, self._lifecycle_events(), enqueued=binding.enqueued)
            return await insert_new(new, rows, unit)
        enqueued: set[str] = set()
        async with env.storage.transaction() as storage_tx:
            unit = UnitOfWork(env, storage_tx, self._lifecycle_events(), implicit=True, enqueued=enqueued)
            ids = await insert_new(new, rows, unit)
        if enqueued:
            env.wake(enqueued)
        return ids

    def _limited(self) -> bool:
        """Whether the jobs this client creates have limits (their own or their queue's)."""
        options = self._options
        return (
            options.concurrency is not None
            or options.rate_limit is not None
            or options.queue in self._env.options.queue_limits
        )

    def _limits_of(self, invocation: Invocation) -> JobLimits | None:
        """The stored limits of a job of ``invocation`` (keys filled now: checked before any write)."""
        options = self._options
        function = invocation.target if invocation.method is None else f"{invocation.target}.{invocation.method}"
        return job_limits(
            options.concurrency,
            options.rate_limit,
            queue=options.queue,
            function=function,
            arguments=invocation.arguments,
            properties=options.properties,
            queue_limits=self._env.options.queue_limits,
        )

    async def _create_controlled(self, calls: list[JobCall]) -> list[int]:
        """Create unique or limited jobs in one transaction. A unique job locks its key's row (see
        :mod:`hivemind_jobs.client.unique`), then answers the holder's id or creates the job and
        makes it the holder; a limited job's limits are set before the transaction commits (no
        claim sees it before). Several statements per job, paid only by these jobs."""
        unique = self._options.unique
        invocations = [self._invocation(item.function, item.args, item.kwargs) for item in calls]
        # keys are checked before any write
        keys = [unique_key(unique, invocation) for invocation in invocations] if unique is not None else None
        limits = [self._limits_of(invocation) for invocation in invocations]
        ids: list[int] = []
        limited: list[JobLimitSet] = []
        async with self.unit_of_work(implicit=False) as scope:
            if keys is None:
                ids = await self._create_in(scope, calls, invocations)
                created: list[bool] = [True] * len(ids)
            else:
                assert unique is not None
                ids, created = await self._create_unique_in(scope, unique, calls, invocations, keys)
            for job_id, job_limit, new in zip(ids, limits, created, strict=True):
                if new and job_limit is not None:
                    limited.append(JobLimitSet.of(job_id, job_limit))
            if limited:
                await scope.tx.job_limit_set(limited)
        return ids

    async def _create_in(self, scope: UnitOfWork, calls: list[JobCall], invocations: list[Invocation]) -> list[int]:
        """Create the jobs of ``calls`` in ``scope``."""
        if not calls:
            return []
        new = self._new_jobs()
        if new is None:
            jobs = [self._build(item.function, item.args, item.kwargs) for item in calls]
            for job in jobs:
                await elect(job, self._options.initial_state(), scope)
            await save_new(jobs, scope)
            return [job.id for job in jobs]
        rows = new.inserts(invocations, self._env.clock.now())
        return await insert_new(new, rows, scope)

    async def _create_unique_in(
        self, scope: UnitOfWork, unique: Unique, calls: list[JobCall], invocations: list[Invocation], keys: list[str]
    ) -> tuple[list[int], list[bool]]:
        """Create unique jobs in ``scope``: the id of each (created or the holder's) and whether it
        was created."""
        states = unique.state_names()
        ids: list[int] = []
        created: list[bool] = []
        tx = scope.tx
        # Keys are locked in one order, so that batches sharing keys wait instead of deadlocking.
        claimed = {key: await tx.job_unique_claim(key) for key in sorted(set(keys))}
        holders: dict[str, int] = {}  # the holders found or created by this batch
        for item, invocation, key in zip(calls, invocations, keys, strict=True):
            now = self._env.clock.now()
            held = claimed[key]
            holder = holders.get(key)
            if holder is None and held.job_id is not None and self._still_held(unique, held, now):
                holder = held.job_id
            if holder is not None:
                if unique.on_conflict == "raise":
                    raise DuplicateJobError(holder, key)
                holders[key] = holder
                ids.append(holder)
                created.append(False)
                continue
            job_id = (await self._create_in(scope, [item], [invocation]))[0]
            expires = now + unique.period if unique.period is not None else None
            await tx.job_unique_set(JobUniqueSet(key, job_id, states, expires))
            holders[key] = job_id
            ids.append(job_id)
            created.append(True)
        return ids, created

    @staticmethod
    def _still_held(unique: Unique, held: JobUniqueRecord, now: datetime) -> bool:
        """Whether the holder of a claimed key keeps it: in one of its states, or within the period."""
        return unique.holds(held.job_state) or (held.expires_at is not None and held.expires_at > now)

    async def _create(self, jobs: list[BackgroundJob]) -> list[int]:
        async with self.unit_of_work() as scope:
            for job in jobs:
                await elect(job, self._options.initial_state(), scope)
            await save_new(jobs, scope)
        return [job.id for job in jobs]

    # ------------------------------------------------------------------ reading
    async def try_get(self, job_id: int) -> BackgroundJob | None:
        _check_job_id(job_id)
        async with self._read_scope() as tx:
            record = await tx.job_get(JobGet(job_id))
        return None if record is None else job_from_record(record, self._env.name, self._env.codec)

    async def get(self, job_id: int) -> BackgroundJob:
        job = await self.try_get(job_id)
        if job is None:
            raise JobNotFoundError(job_id, self._env.name)
        return job

    # ------------------------------------------------------------------ results
    @overload
    async def wait(self, job_id: int, *, timeout: timedelta | float | None = None) -> Any: ...
    @overload
    async def wait(self, job_id: int, result_type: type[T], *, timeout: timedelta | float | None = None) -> T: ...
    async def wait(self, job_id: int, result_type: Any = Any, *, timeout: timedelta | float | None = None) -> Any:
        """Wait until the job reaches a final state and return its result if it Succeeded.

        The result is decoded as ``result_type`` (like :meth:`get_data`); without one it comes back
        as stored (tagged values such as datetimes still come back typed). :meth:`create_ref` gives
        a handle that decodes with the function's return annotation.

        Raises :class:`JobFailedError` (the stored exception type, message and traceback) when the
        job failed for good (a failure that is retried is waited through), :class:`JobDeletedError`
        when it was deleted or removed, :class:`JobNotSucceededError` for another final state,
        :class:`JobNotFoundError` when no such job exists, and :class:`JobWaitTimeoutError` (a
        :class:`TimeoutError`) after ``timeout`` seconds (None: no limit); the job is not changed.
        A job that is cancelled (Idle) is waited for until it runs again or the timeout.

        Waits are cheap: every wait of the environment shares one reader, woken by PostgreSQL's
        notification when jobs finish, or polling with backoff (10 ms to 0.5 s) elsewhere.
        """
        _check_job_id(job_id)
        seconds = _wait_seconds(timeout)
        if self._binding is not None:
            raise TransactionError(
                "wait inside a transaction would keep it open while the job runs (and could never see the "
                "job finish); wait outside it, after the commit"
            )
        env = self._env
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                async with env.storage.transaction(readonly=True) as tx:
                    record = await tx.job_get(JobGet(job_id))
                if record is None:
                    raise JobNotFoundError(job_id, env.name)
                row: StateRow | None = record.states[-1]
                if row is None or not is_final_state(row.name):
                    row = await result_waiters(env).final_state(job_id)
        except TimeoutError:
            if deadline.expired():
                raise JobWaitTimeoutError(job_id, cast(float, seconds)) from None
            raise
        return self._outcome(job_id, row, result_type)

    def _outcome(self, job_id: int, row: StateRow | None, result_type: Any) -> Any:
        """The result stored in a final state row, or the error the state stands for."""
        codec = self._env.codec
        if row is None:
            raise JobDeletedError(job_id, SystemDeleted.state_name, "removed from storage")
        if row.name == Succeeded.state_name:
            fields = load_json(row.fields) if row.fields else {}
            stored = fields.get("result") if isinstance(fields, dict) else None
            return codec.decode(stored, result_type, path=f"the result of job {job_id}")
        state = state_from_row(row, codec)
        if isinstance(state, Failed):
            raise JobFailedError(
                job_id,
                exception_type=state.exception_type,
                exception_message=state.message,
                traceback=state.traceback,
                reason=state.reason,
            )
        if isinstance(state, Deleted | SystemDeleting | SystemDeleted):
            raise JobDeletedError(job_id, row.name, row.reason)
        raise JobNotSucceededError(job_id, row.name, row.reason)

    async def count_by_state(self, *, at_most: int | None = None) -> dict[str, int]:
        """How many jobs are in each current state.

        ``at_most``: count each state only up to that many (a state at the cap has at least that
        many jobs): bounded reads of the state index instead of one over every job, for tables of
        millions of jobs (the dashboard's overview)."""
        if at_most is not None and (isinstance(at_most, bool) or not isinstance(at_most, int) or at_most < 1):
            raise ConfigurationError(f"at_most must be a positive whole number or None, got {at_most!r}")
        async with self._read_scope() as tx:
            if at_most is None:
                return await tx.job_state_counts()
            return await tx.job_state_counts_capped(at_most)

    async def count_by_queue(self, state: type[State] | str, *, since: datetime) -> dict[str, int]:
        """How many jobs of each queue entered ``state`` since ``since`` and are still in it (for
        Succeeded and Failed: finished since then), read through the state index."""
        name = _state_filter_name(state)
        async with self._read_scope() as tx:
            return await tx.job_state_by_queue(JobStateSince(name, _aware("since", since)))

    async def count_over_time(self, state: type[State] | str, *, since: datetime, every: timedelta) -> dict[int, int]:
        """How many jobs entered ``state`` (and are still in it) in each period ``every`` from
        ``since`` on: period ``n`` starts at ``since + n * every``; periods without one are left out."""
        name = _state_filter_name(state)
        if not isinstance(every, timedelta) or every <= timedelta(0):
            raise ConfigurationError(f"every must be a positive timedelta, got {every!r}")
        async with self._read_scope() as tx:
            return await tx.job_state_histogram(JobStateHistogram(name, _aware("since", since), every))

    async def queue_stats(self) -> list[QueueStat]:
        """Per queue and priority: jobs ready to be fetched and jobs delayed, and whether the queue
        is paused (``hive.queues``)."""
        async with self._read_scope() as tx:
            stats = await tx.queue_stats()
            paused = {record.queue for record in await tx.queue_pause_list()}
        return [dataclasses.replace(stat, paused=True) if stat.queue in paused else stat for stat in stats]

    # ------------------------------------------------------------------ queries
    async def search(
        self,
        where: Condition | None = None,
        *,
        order_by: str | Order = "id",
        limit: int = 100,
        page: int | None = None,
        after: str | None = None,
    ) -> JobPage:
        """The jobs matching ``where`` in ``order_by`` order (``"-created"``, ``"priority"``,
        ``"property:tenant"`` ...; ties by id), at most ``limit`` (up to 10,000).

        Page through results with ``page`` (1-based, for shallow pages) or, for deep pages, with
        ``after=`` the previous page's ``next_cursor`` (keyset: as fast on page 1,000 as on page 1).
        """
        condition = _check_where(where)
        order = parse_order(order_by)
        _check_count("limit", limit, MAX_PAGE)
        offset = 0
        if page is not None and after is not None:
            raise QueryError("pass either page= or after=, not both")
        if page is not None:
            _check_count("page", page, _MAX_OFFSET)
            offset = (page - 1) * limit
            if offset > _MAX_OFFSET:
                raise QueryError(
                    f"page {page} of {limit} starts past job {_MAX_OFFSET:,}; continue from a cursor "
                    "(after=page.next_cursor) for deep pages"
                )
        keyset = None
        if after is not None:
            if not order.keyset:
                raise QueryError(f"order_by {str(order)!r} has no cursor; page through it with page=")
            keyset = decode_cursor(order, after)
        async with self._read_scope() as tx:
            # One row more than the page tells whether another page follows.
            records = await tx.job_search(JobSearch(condition, order, limit + 1, offset, keyset))
        more = len(records) > limit
        records = records[:limit]
        env = self._env
        jobs = [job_from_record(record, env.name, env.codec) for record in records]
        cursor = None
        if more and order.keyset:
            last = records[-1]
            cursor = encode_cursor(order, _sort_value(last, order), last.id)
        return JobPage(jobs, cursor)

    async def count(self, where: Condition | None = None) -> int:
        """How many jobs match ``where`` (all jobs without it)."""
        condition = _check_where(where)
        async with self._read_scope() as tx:
            return await tx.job_count(condition)

    async def search_and_lock(
        self,
        where: Condition | None = None,
        *,
        limit: int = 100,
        requester: str | None = None,
        order_by: str | Order = "id",
    ) -> LockedJobs:
        """Lock up to ``limit`` (at most 1,000) unlocked jobs matching ``where`` for ``requester``.

        Jobs locked by others, and rows another transaction is locking right now, are skipped, so
        several consumers can share the work. ``async with`` the result releases the locks still
        held at the end; each :class:`LockedJob` can change, save and release on its own.
        """
        condition = _check_where(where)
        order = parse_order(order_by)
        _check_count("limit", limit, MAX_LOCK)
        holder = requester or _new_requester()
        validate_requester(holder)
        async with self.unit_of_work() as scope:
            scope.last_operation()
            records = await scope.tx.job_search(JobSearch(condition, order, limit, lock_requester=holder))
        env = self._env

        async def release(job_ids: list[int]) -> None:
            async with self.unit_of_work() as scope:
                for job_id in job_ids:
                    await release_lock(job_id, holder, scope)

        return LockedJobs(
            [LockedJob(job_from_record(record, env.name, env.codec), self, holder) for record in records],
            holder,
            release,
        )

    async def queues(self, prefix: str | None = None) -> list[str]:
        """The distinct queue names jobs are in (starting with ``prefix``), sorted."""
        if prefix is not None:
            if not isinstance(prefix, str):
                raise QueryError(f"prefix must be a string, got {prefix!r}")
            check_text(prefix, "queue prefix")
        async with self._read_scope() as tx:
            return await tx.job_queues(JobQueues(prefix or None))

    # ------------------------------------------------------------------ bulk operations
    async def _bulk(
        self,
        where: Condition | None,
        change: Callable[[BackgroundJob, UnitOfWork], Any],
        *,
        batch_size: int,
        requester: str | None,
    ) -> BulkResult:
        """Lock, change and save the unlocked jobs matching ``where`` in batches of ``batch_size``
        (one transaction per batch unless this client is bound to one). ``change`` answers
        whether it changed the job; jobs it leaves alone are released unchanged."""
        condition = _check_where(where)
        _check_count("batch_size", batch_size, MAX_LOCK)
        holder = requester or _new_requester()
        validate_requester(holder)
        env = self._env
        changed = unchanged = batches = 0
        last_id = 0
        while True:
            after_last = job_target.id > last_id
            batch_where = after_last if condition is None else all_of(condition, after_last)
            async with self.unit_of_work() as scope:
                records = await scope.tx.job_search(JobSearch(batch_where, Order(), batch_size, lock_requester=holder))
                if not records:
                    break
                batches += 1
                to_save = []
                for record in records:
                    job = job_from_record(record, env.name, env.codec)
                    if await change(job, scope):
                        to_save.append(job)
                    else:
                        await release_lock(job.id, holder, scope)
                        unchanged += 1
                if to_save:
                    outcomes = await save_locked_many(to_save, holder, scope, keep_lock=lambda _job: False, last=False)
                    changed += sum(1 for outcome in outcomes if outcome is UpdateOutcome.SAVED)
                    unchanged += sum(1 for outcome in outcomes if outcome is not UpdateOutcome.SAVED)
            last_id = records[-1].id
            if len(records) < batch_size:
                break
        return BulkResult(changed, unchanged, batches)

    def _electing(self, state: State, applies: Callable[[State], bool]) -> Callable[[BackgroundJob, UnitOfWork], Any]:
        async def change(job: BackgroundJob, scope: UnitOfWork) -> bool:
            if not applies(job.state):
                return False
            try:
                await elect(job, _fresh(state), scope)
            except InvalidTransitionError:
                return False
            return True

        return change

    async def change_state_where(
        self,
        where: Condition | None,
        state: State,
        *,
        batch_size: int = 500,
        requester: str | None = None,
    ) -> BulkResult:
        """Elect ``state`` (election handlers run) for every unlocked job matching ``where``."""
        if not isinstance(state, State):
            raise QueryError(f"state must be a State instance such as hm.Enqueued(), got {state!r}")
        return await self._bulk(
            where, self._electing(state, lambda _current: True), batch_size=batch_size, requester=requester
        )

    async def requeue_where(
        self,
        where: Condition | None,
        *,
        queue: str | None = None,
        priority: Priority | int | str | None = None,
        batch_size: int = 500,
        requester: str | None = None,
    ) -> BulkResult:
        """Enqueue every unlocked job matching ``where`` again (optionally in another queue or
        priority): failed, succeeded, idle or deleted jobs run once more."""
        target_queue = validate_queue_name(queue) if queue is not None else None
        target_priority = coerce_priority(priority) if priority is not None else None
        elect_enqueued = self._electing(Enqueued(reason="requeued"), lambda _current: True)

        async def change(job: BackgroundJob, scope: UnitOfWork) -> bool:
            if target_queue is not None or target_priority is not None:
                move(job, target_queue, target_priority)
            return bool(await elect_enqueued(job, scope))

        return await self._bulk(where, change, batch_size=batch_size, requester=requester)

    async def delete_where(
        self,
        where: Condition | None,
        *,
        reason: str | None = None,
        batch_size: int = 500,
        requester: str | None = None,
    ) -> BulkResult:
        """Soft-delete (state Deleted) every unlocked job matching ``where`` that is not deleted yet;
        running jobs are locked by their drone and skipped (cancel them first)."""
        state = Deleted(reason=reason or "deleted")
        return await self._bulk(
            where,
            self._electing(state, lambda current: not isinstance(current, Deleted | SystemDeleting | SystemDeleted)),
            batch_size=batch_size,
            requester=requester,
        )

    async def set_property_where(
        self,
        where: Condition | None,
        name: str,
        value: PropertyValue | None,
        *,
        batch_size: int = 500,
        requester: str | None = None,
    ) -> BulkResult:
        """Set the property ``name`` (None removes it) on every unlocked job matching ``where``."""
        validate_property_name(name)
        if value is not None:
            property_type_of(name, value)

        async def change(job: BackgroundJob, _scope: UnitOfWork) -> bool:
            if job.get_property(name) == value and (value is None or type(job.get_property(name)) is type(value)):
                return False
            set_property(job, name, value)
            return True

        return await self._bulk(where, change, batch_size=batch_size, requester=requester)

    # ------------------------------------------------------------------ locking
    async def _lock(self, job_id: int, requester: str) -> tuple[BackgroundJob, bool]:
        _check_job_id(job_id)
        validate_requester(requester)
        async with self.unit_of_work() as scope:
            scope.last_operation()
            record = await scope.tx.job_get(JobGet(job_id, lock_requester=requester))
        if record is None:
            raise JobNotFoundError(job_id, self._env.name)
        return job_from_record(record, self._env.name, self._env.codec), record.lock_acquired

    async def try_lock(self, job_id: int, requester: str | None = None) -> LockedJob | None:
        """Lock the job for ``requester`` (a random one by default); None when someone else holds it."""
        holder = requester or _new_requester()
        job, acquired = await self._lock(job_id, holder)
        return LockedJob(job, self, holder) if acquired else None

    def get_with_lock(self, job_id: int, requester: str | None = None) -> LockAttempt:
        """The job, locked for ``requester``; raises JobLockedError when someone else holds the lock.

        ``await`` it, or use it as ``async with jobs.get_with_lock(job_id) as job:`` (the lock is
        released at the end of the block).
        """
        holder = requester or _new_requester()

        async def acquire() -> LockedJob:
            job, acquired = await self._lock(job_id, holder)
            if not acquired:
                raise JobLockedError(job_id, job.locked_by, holder)
            return LockedJob(job, self, holder)

        return LockAttempt(acquire)

    async def wait_for_lock(
        self,
        job_id: int,
        requester: str | None = None,
        *,
        timeout: timedelta | float = 30.0,
        poll_interval: timedelta | float | None = None,
    ) -> LockedJob:
        """Poll until the lock is ours; raises JobLockTimeoutError after ``timeout``."""
        if self._binding is not None and self._env.storage.capabilities.single_writer:
            raise TransactionError(
                "wait_for_lock inside a transaction on a single-writer database would block the holder from "
                "ever saving; wait outside the transaction"
            )
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        poll = poll_interval if poll_interval is not None else self._env.options.wait_for_lock_poll
        poll_seconds = poll.total_seconds() if isinstance(poll, timedelta) else float(poll)
        if seconds < 0 or poll_seconds <= 0:
            raise ConfigurationError("timeout must be >= 0 and poll_interval > 0")
        holder = requester or _new_requester()
        deadline = time.monotonic() + seconds
        while True:
            locked = await self.try_lock(job_id, holder)
            if locked is not None:
                return locked
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobLockTimeoutError(f"job {job_id} stayed locked by someone else for {seconds:g} s")
            await asyncio.sleep(min(poll_seconds, remaining))

    # ------------------------------------------------------------------ state changes
    async def change_state(self, job_id: int, state: State, *, requester: str | None = None) -> bool:
        """Lock the job, elect ``state``, save and release, in one transaction.

        Returns True when ``state`` is the job's state afterwards (no handler replaced it).
        Raises JobLockedError when someone else holds the lock.
        """
        holder = requester or _new_requester()
        validate_requester(holder)
        _check_job_id(job_id)
        async with self.unit_of_work() as scope:
            job = await self._lock_in(scope, job_id, holder)
            stays = await elect(job, state, scope)
            await save_locked(job, holder, scope, keep_lock=False)
        return stays

    async def _lock_in(self, scope: UnitOfWork, job_id: int, holder: str) -> BackgroundJob:
        record = await scope.tx.job_get(JobGet(job_id, lock_requester=holder))
        if record is None:
            raise JobNotFoundError(job_id, self._env.name)
        job = job_from_record(record, self._env.name, self._env.codec)
        if not record.lock_acquired:
            raise JobLockedError(job_id, job.locked_by, holder)
        return job

    async def _stop(
        self, job_id: int, target: State, can_stop: Callable[[State], bool], requester: str | None
    ) -> bool | None:
        """Move the job to ``target`` if ``can_stop(its state)``; ask its drone if it is running.

        Returns True (moved), None (asked the drone), False (not in a stoppable state).
        """
        holder = requester or _new_requester()
        validate_requester(holder)
        _check_job_id(job_id)
        env = self._env
        async with self.unit_of_work() as scope:
            record = await scope.tx.job_get(JobGet(job_id, lock_requester=holder))
            if record is None:
                raise JobNotFoundError(job_id, env.name)
            job = job_from_record(record, env.name, env.codec)
            if not record.lock_acquired:
                if isinstance(job.state, Executing | Enqueued):
                    payload = {
                        "state": target.name,
                        "reason": target.reason,
                        "fields": json.loads(encode_state_fields(target, env.codec)),
                    }
                    await scope.tx.job_action_insert(
                        JobActionInsert(job_id, job.execution_key, "stop", json.dumps(payload), holder)
                    )
                    return None
                raise JobLockedError(job_id, job.locked_by, holder)
            if not can_stop(job.state):
                await release_lock(job_id, holder, scope, last=True)
                return False
            await elect(job, target, scope)
            await save_locked(job, holder, scope, keep_lock=False)
            return True

    async def cancel(self, job_id: int, *, reason: str | None = None, requester: str | None = None) -> CancelResult:
        """Stop a job that has not finished: waiting jobs become Idle; a running job's drone is asked."""
        state = Idle(reason=reason or "cancelled")
        moved = await self._stop(
            job_id, state, lambda current: isinstance(current, Enqueued | Awaiting | Executing), requester
        )
        if moved is None:
            return CancelResult.REQUESTED
        return CancelResult.CANCELLED if moved else CancelResult.NOT_CANCELLABLE

    async def delete(self, job_id: int, *, reason: str | None = None, requester: str | None = None) -> DeleteResult:
        """Soft-delete a job (state Deleted; retention removes it later); a running job is stopped first."""
        state = Deleted(reason=reason or "deleted")
        moved = await self._stop(
            job_id, state, lambda current: not isinstance(current, Deleted | SystemDeleting | SystemDeleted), requester
        )
        if moved is None:
            return DeleteResult.REQUESTED
        return DeleteResult.DELETED if moved else DeleteResult.ALREADY_DELETED

    # ------------------------------------------------------------------ data
    async def set_data(self, job_id: int, name: str, value: object) -> None:
        """Store a named JSON value with the job, written at once (in this client's transaction).

        Raises LimitExceededError, writing nothing, when its JSON is over ``Limits.max_data_bytes``.
        """
        _check_job_id(job_id)
        validate_data_name(name)
        text = self._env.codec.dumps(value, path=f"job data {name!r}")
        self._env.options.limits.check_data(job_id, name, text)
        async with self.unit_of_work() as scope:
            scope.last_operation()
            stored = await scope.tx.job_data_set(JobDataSet(job_id, name, text))
        if not stored:
            raise JobNotFoundError(job_id, self._env.name)

    async def list_data(self, job_id: int, *, limit: int = 1000) -> dict[str, int]:
        """The names of the job's data items (at most ``limit``, in code point order), each with the
        size of its stored JSON in characters; an empty dict when it has none (or no such job)."""
        _check_job_id(job_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigurationError(f"limit must be a whole number from 1 to 10000, got {limit!r}")
        async with self._read_scope() as tx:
            items = await tx.job_data_list(JobDataList(job_id, limit))
        return {item.name: item.size for item in items}

    async def _data_text(self, job_id: int, name: str) -> str | None:
        _check_job_id(job_id)
        validate_data_name(name)
        async with self._read_scope() as tx:
            return await tx.job_data_get(JobDataGet(job_id, name))

    @overload
    async def get_data(self, job_id: int, name: str) -> Any: ...
    @overload
    async def get_data(self, job_id: int, name: str, type_hint: type[T]) -> T: ...
    async def get_data(self, job_id: int, name: str, type_hint: Any = Any) -> Any:
        """The job data item ``name`` decoded as ``type_hint``; raises JobDataNotFoundError if missing.

        Without a hint the value comes back as stored (tagged values such as datetimes still come
        back typed); with one, the type checker knows the result type.
        """
        text = await self._data_text(job_id, name)
        if text is None:
            raise JobDataNotFoundError(f"job {job_id} has no data item {name!r}")
        return self._env.codec.loads(text, type_hint, path=f"job data {name!r}")

    @overload
    async def try_get_data(self, job_id: int, name: str, *, default: Any = None) -> Any: ...
    @overload
    async def try_get_data(self, job_id: int, name: str, type_hint: type[T]) -> T | None: ...
    @overload
    async def try_get_data(self, job_id: int, name: str, type_hint: type[T], *, default: D) -> T | D: ...
    async def try_get_data(self, job_id: int, name: str, type_hint: Any = Any, *, default: Any = None) -> Any:
        """Like :meth:`get_data`, but ``default`` when the item does not exist."""
        text = await self._data_text(job_id, name)
        if text is None:
            return default
        return self._env.codec.loads(text, type_hint, path=f"job data {name!r}")

    # ------------------------------------------------------------------ logs
    async def add_log(
        self,
        job_id: int,
        message: str,
        *,
        level: int = logging.INFO,
        logger: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """Persist a log record with the job; a message over ``Limits.max_log_message_bytes`` (and an
        exception's text over ``Limits.max_exception_bytes``) is cut with a visible marker."""
        _check_job_id(job_id)
        if not isinstance(message, str):
            raise ConfigurationError(f"log message must be a string, got {type(message).__name__}")
        limits = self._env.options.limits
        exception_message, exception_traceback = limits.exception_text(
            redact_secrets(str(exception)) if exception else None,
            redact_secrets("".join(traceback.format_exception(exception))) if exception else None,
        )
        row = JobLogRow(
            job_id=job_id,
            level=int(level),
            message=limits.log_message(redact_secrets(message)),
            logger=logger,
            exception_type=f"{type(exception).__module__}.{type(exception).__qualname__}" if exception else None,
            exception_message=exception_message,
            traceback=exception_traceback,
        )
        async with self.unit_of_work() as scope:
            scope.last_operation()
            written = await scope.tx.job_log_insert([row])
        if written != 1:
            raise JobNotFoundError(job_id, self._env.name)

    async def get_logs(
        self, job_id: int, *, min_level: int = logging.NOTSET, after_id: int = 0, limit: int = 1000
    ) -> list[JobLogEntry]:
        """Log records of the job, oldest first; page with ``after_id`` (the last id you have)."""
        _check_job_id(job_id)
        if not 1 <= limit <= _MAX_LOG_PAGE:
            raise ConfigurationError(f"limit must be between 1 and {_MAX_LOG_PAGE}, got {limit}")
        async with self._read_scope() as tx:
            records = await tx.job_log_list(JobLogList(job_id, int(min_level), int(after_id), limit))
        return [
            JobLogEntry(
                r.id,
                r.job_id,
                r.level,
                r.message,
                r.logger,
                r.exception_type,
                r.exception_message,
                r.traceback,
                r.created_at,
            )
            for r in records
        ]


def _state_filter_name(state: type[State] | str) -> str:
    if isinstance(state, type) and issubclass(state, State):
        return state.state_name
    if isinstance(state, str):
        return validate_state_name(state)
    raise ConfigurationError(f"state must be a state class such as Succeeded or its name, got {state!r}")


def _aware(name: str, moment: object) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ConfigurationError(f"{name} must be a datetime with a time zone, got {moment!r}")
    return moment
