"""The recurring-job client: create or update by id, read, pause, resume, trigger and delete."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, overload

from hivemind_jobs.core.job import Middleware, MiddlewareEntry, PropertyValue
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.retry import RETRY_POLICY_PROPERTY, RetryPolicy
from hivemind_jobs.core.text import text_problem
from hivemind_jobs.core.throttle import Limit, RateLimit
from hivemind_jobs.core.timeouts import validate_timeout
from hivemind_jobs.errors import (
    ConfigurationError,
    HiveMindError,
    JobLockTimeoutError,
    JobNotFoundError,
    QueryError,
    TransactionError,
)
from hivemind_jobs.query.conditions import Condition
from hivemind_jobs.query.recurring import check_recurring_condition, recurring_matches
from hivemind_jobs.recurring.engine import (
    complete_if_finished,
    enqueue_occurrence,
    prune_history,
    record_to_job,
    scheduler_pass,
    state_event,
    write,
)
from hivemind_jobs.recurring.model import (
    Misfire,
    NextRunBase,
    RecurringDefinition,
    RecurringJob,
    RecurringSettings,
    RecurringStats,
    validate_recurring_id,
)
from hivemind_jobs.recurring.schedule import Schedule
from hivemind_jobs.storage.protocol import (
    JobGet,
    RecurringEventList,
    RecurringEventRecord,
    RecurringGet,
    RecurringList,
    RecurringWrite,
)
from hivemind_jobs.storage.protocol import Transaction as StorageTransaction

if TYPE_CHECKING:
    from hivemind_jobs.client.context import JobContext
    from hivemind_jobs.client.jobs import BackgroundJobClient
    from hivemind_jobs.lifecycle.services import EnvironmentServices, TransactionBase
    from hivemind_jobs.lifecycle.unit import UnitOfWork
    from hivemind_jobs.recurring.calendars import CalendarRegistry
    from hivemind_jobs.recurring.engine import PassReport

__all__ = ["RecurringJobClient", "RecurringNotFoundError"]

P = ParamSpec("P")

_UNSET: Any = object()
_ORDER_KEYS = ("id", "state", "queue", "priority", "next_run", "created_at", "modified_at", "runs", "last_outcome")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _fields(job: RecurringJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state,
        "queue": job.queue,
        "priority": int(job.priority),
        "next_run": job.next_run,
        "created_at": job.created_at,
        "modified_at": job.modified_at,
        "runs": job.stats.runs,
        "last_outcome": job.stats.last_outcome,
    }


OnRunning = Literal["wait", "cancel"]


class RecurringNotFoundError(JobNotFoundError):
    """No recurring job with that id in this environment."""

    def __init__(self, recurring_id: str, environment: str) -> None:
        LookupError.__init__(self, f"no recurring job {recurring_id!r} in environment {environment!r}")
        self.job_id = recurring_id  # type: ignore[assignment]
        self.environment = environment


@dataclass(frozen=True)
class _Options:
    queue: Any = _UNSET
    priority: Any = _UNSET
    properties: Mapping[str, PropertyValue] | None = None
    middleware: tuple[Middleware, ...] = ()
    retry: RetryPolicy | None = None
    timeout: timedelta | None = None
    concurrency: Limit | None = None
    rate_limit: RateLimit | None = None
    settings: RecurringSettings = field(default_factory=RecurringSettings)
    on_running: OnRunning = "wait"
    update_timeout: timedelta | None = timedelta(seconds=30)
    poll: timedelta = timedelta(milliseconds=200)
    paused: bool = False


class RecurringJobClient:
    """Recurring jobs of one environment (``hive.recurring``, or ``tx.recurring`` to write in the
    transaction ``tx``). Configure with :meth:`options`."""

    def __init__(
        self,
        environment: EnvironmentServices,
        jobs: BackgroundJobClient,
        calendars: CalendarRegistry,
        options: _Options | None = None,
        *,
        transaction: TransactionBase | None = None,
    ) -> None:
        """``jobs``: the job client occurrences are created with (bound to ``transaction`` when
        given); ``calendars``: the calendars schedules can name."""
        self._env = environment
        self._jobs = jobs
        self._calendars = calendars
        self._options = options or _Options()
        self._transaction = transaction

    def _write_scope(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """This client's transaction, or a new one committed at the end of the block."""
        return self._jobs.unit_of_work(implicit=False)

    @asynccontextmanager
    async def _read_scope(self) -> AsyncIterator[StorageTransaction]:
        if self._transaction is not None:
            yield self._transaction.storage_transaction
            return
        async with self._env.storage.transaction(readonly=True) as tx:
            yield tx

    @property
    def calendars(self) -> CalendarRegistry:
        """The calendars schedules can name (built-ins plus those registered here)."""
        return self._calendars

    def options(
        self,
        *,
        queue: str = _UNSET,
        priority: Priority | int | str = _UNSET,
        properties: Mapping[str, PropertyValue] | None = _UNSET,
        middleware: Iterable[Middleware] | None = _UNSET,
        retry: RetryPolicy | None = _UNSET,
        timeout: timedelta | None = _UNSET,
        concurrency: Limit | None = _UNSET,
        rate_limit: RateLimit | None = _UNSET,
        misfire: Misfire | str = _UNSET,
        misfire_threshold: timedelta = _UNSET,
        next_run_base: NextRunBase | str = _UNSET,
        keep_states: int | None = _UNSET,
        keep_logs: int | None = _UNSET,
        state_retention: timedelta | None = _UNSET,
        log_retention: timedelta | None = _UNSET,
        on_running: OnRunning = _UNSET,
        update_timeout: timedelta | None = _UNSET,
        paused: bool = _UNSET,
    ) -> RecurringJobClient:
        """A client whose :meth:`create_or_update` uses these options (merged over this client's).

        ``on_running`` decides what an update or delete does while an occurrence runs: ``"wait"``
        for it to end or ``"cancel"`` it first, either way for at most ``update_timeout``
        (None: no limit). ``paused=True`` creates the recurring job Idle. ``timeout`` bounds each run
        of every occurrence, as ``jobs.options(timeout=...)`` does for a job; ``concurrency`` and
        ``rate_limit`` limit every occurrence as they limit a job (keys filled when the recurring
        job is created or updated).
        """
        current = self._options
        changes: dict[str, Any] = {}
        if queue is not _UNSET:
            changes["queue"] = queue
        if priority is not _UNSET:
            changes["priority"] = priority
        if properties is not _UNSET:
            changes["properties"] = dict(properties or {})
        if middleware is not _UNSET:
            changes["middleware"] = tuple(middleware or ())
        if retry is not _UNSET:
            if retry is not None and not isinstance(retry, RetryPolicy):
                raise ConfigurationError(f"retry takes a RetryPolicy or None, got {retry!r}")
            changes["retry"] = retry
        if timeout is not _UNSET:
            changes["timeout"] = validate_timeout(timeout, "timeout")
        if concurrency is not _UNSET:
            self._jobs.options(concurrency=concurrency)  # checked as for a job
            changes["concurrency"] = concurrency
        if rate_limit is not _UNSET:
            self._jobs.options(rate_limit=rate_limit)
            changes["rate_limit"] = rate_limit
        setting_changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("misfire", misfire),
                ("misfire_threshold", misfire_threshold),
                ("next_run_base", next_run_base),
                ("keep_states", keep_states),
                ("keep_logs", keep_logs),
                ("state_retention", state_retention),
                ("log_retention", log_retention),
            )
            if value is not _UNSET
        }
        if setting_changes:
            changes["settings"] = replace(current.settings, **setting_changes)
        if on_running is not _UNSET:
            if on_running not in ("wait", "cancel"):
                raise ConfigurationError(f"on_running must be 'wait' or 'cancel', got {on_running!r}")
            changes["on_running"] = on_running
        if update_timeout is not _UNSET:
            if update_timeout is not None and (
                not isinstance(update_timeout, timedelta) or update_timeout < timedelta(0)
            ):
                raise ConfigurationError(f"update_timeout must be a timedelta >= 0 or None, got {update_timeout!r}")
            changes["update_timeout"] = update_timeout
        if paused is not _UNSET:
            changes["paused"] = bool(paused)
        return RecurringJobClient(
            self._env, self._jobs, self._calendars, replace(current, **changes), transaction=self._transaction
        )

    # ------------------------------------------------------------------ definition
    def _definition(
        self, schedule: Schedule, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> RecurringDefinition:
        if not isinstance(schedule, Schedule):
            raise ConfigurationError(
                f"the schedule must be hm.cron(...) or hm.every(...), got {schedule!r}; "
                "call create_or_update(id, schedule, function, *args)"
            )
        options = self._options
        job_options: dict[str, Any] = {"properties": options.properties, "middleware": options.middleware}
        if options.queue is not _UNSET:
            job_options["queue"] = options.queue
        if options.priority is not _UNSET:
            job_options["priority"] = options.priority
        if options.timeout is not None:
            job_options["timeout"] = options.timeout  # stored with the definition's properties, copied to each run
        job_options["concurrency"] = options.concurrency
        job_options["rate_limit"] = options.rate_limit
        # The background-job client checks the call, its arguments and the options exactly as for a job.
        template_client = self._jobs.options(**job_options)
        template = template_client._build(function, args, kwargs)
        limits = template_client._limits_of(template.invocation)
        schedule.next_after(self._env.clock.now(), self.calendars)  # a schedule that never fires fails here
        properties = {name: value for name, value in template.properties.items() if name != RETRY_POLICY_PROPERTY}
        return RecurringDefinition(
            invocation=template.invocation.to_json(),
            display_name=template.invocation.display_name,
            schedule=schedule,
            queue=template.queue,
            priority=template.priority,
            properties=properties,
            middleware=MiddlewareEntry.list_to_json(template.middleware),
            retry=None if options.retry is None else options.retry.to_json(),
            settings=options.settings,
            limits=limits,
        )

    @overload
    async def create_or_update(
        self,
        recurring_id: str,
        schedule: Schedule,
        function: Callable[Concatenate[JobContext, P], Any],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> bool: ...
    @overload
    async def create_or_update(
        self, recurring_id: str, schedule: Schedule, function: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> bool: ...
    async def create_or_update(
        self, recurring_id: str, schedule: Schedule, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> bool:
        """Create the recurring job ``recurring_id`` that runs ``function(*args, **kwargs)`` on
        ``schedule``, or update it; True when it was created. The arguments are checked against the
        function's signature by the type checker (as for ``jobs.create``) and at run time.

        An update replaces what runs, where, the schedule and the settings (a running occurrence is
        waited for or cancelled first, see :meth:`options`); the statistics and history stay. When the
        schedule changed, the next run is computed again from now.
        """
        validate_recurring_id(recurring_id)
        definition = self._definition(schedule, function, args, dict(kwargs))
        async with self._write_scope() as scope:
            tx = scope.tx
            now = await tx.clock_now()
            paused = self._options.paused
            next_run = None if paused else definition.schedule.next_after(now, self.calendars)
            created = await tx.recurring_write(
                RecurringWrite(
                    id=recurring_id,
                    definition=definition.to_json(),
                    state_name="Idle" if paused else "Enqueued",
                    state_reason="created paused" if paused else None,
                    next_run=next_run,
                    job_id=None,
                    stats=RecurringStats().to_json(),
                )
            )
            if created:
                await tx.recurring_event_insert(
                    [
                        state_event(recurring_id, "Scheduling", "created"),
                        state_event(recurring_id, "Idle", "created paused")
                        if paused
                        else state_event(recurring_id, "Enqueued", next_run=_iso(next_run)),
                    ]
                )
                return True
        await self._wait_until_idle(recurring_id)

        async def change(scope: UnitOfWork, job: RecurringJob) -> None:
            schedule_changed = job.schedule != definition.schedule
            next_run = job.next_run
            if job.state == "Enqueued" and (schedule_changed or next_run is None):
                next_run = definition.schedule.next_after(await scope.tx.clock_now(), self.calendars)
            await write(scope, job, definition=definition, next_run=next_run)
            await scope.tx.recurring_event_insert([state_event(job.id, job.state, "updated", next_run=_iso(next_run))])

        await self._change(recurring_id, change, idle_only=True)
        return False

    # ------------------------------------------------------------------ reading
    async def try_get(self, recurring_id: str) -> RecurringJob | None:
        validate_recurring_id(recurring_id)
        async with self._read_scope() as tx:
            record = await tx.recurring_get(RecurringGet(recurring_id))
        return None if record is None else record_to_job(record, self._env.name)

    async def get(self, recurring_id: str) -> RecurringJob:
        job = await self.try_get(recurring_id)
        if job is None:
            raise RecurringNotFoundError(recurring_id, self._env.name)
        return job

    async def list(self, *, prefix: str | None = None, state: str | None = None) -> list[RecurringJob]:
        """Every recurring job (by id), optionally only ids starting with ``prefix`` or in ``state``."""
        found: list[RecurringJob] = []
        after = ""
        async with self._read_scope() as tx:
            while True:
                page = await tx.recurring_list(RecurringList(after_id=after, limit=1000))
                for record in page:
                    if prefix is not None and not record.id.startswith(prefix):
                        continue
                    if state is not None and record.state_name != state:
                        continue
                    found.append(record_to_job(record, self._env.name))
                if len(page) < 1000:
                    return found
                after = page[-1].id

    async def search(self, where: Condition | None = None, *, order_by: str = "id") -> builtins.list[RecurringJob]:
        """The recurring jobs matching ``where`` (built from ``hm.recurring_job``: id, state, queue,
        priority, next_run, created_at, modified_at, runs, last_outcome, ``prop(name)``), ordered
        by ``order_by`` (one of those columns, ``-`` for descending; ties by id)."""
        condition = check_recurring_condition(where)
        descending = order_by.startswith("-") if isinstance(order_by, str) else False
        key = order_by.removeprefix("-") if isinstance(order_by, str) else None
        if key not in _ORDER_KEYS:
            raise QueryError(f"cannot order recurring jobs by {order_by!r}; use one of {', '.join(_ORDER_KEYS)}")
        found = []
        for job in await self.list():
            fields = _fields(job)
            if condition is None or recurring_matches(condition, fields, job.properties):
                found.append((fields, job))
        found.sort(key=lambda pair: pair[1].id, reverse=descending)
        found.sort(key=lambda pair: (pair[0][key] is None, pair[0][key] or 0) if key != "id" else 0, reverse=descending)
        return [job for _, job in found]

    async def count(self, where: Condition | None = None) -> int:
        """How many recurring jobs match ``where``."""
        return len(await self.search(where))

    async def history(
        self, recurring_id: str, *, kind: Literal["state", "log"] | None = None, limit: int = 100
    ) -> builtins.list[RecurringEventRecord]:
        """The newest ``limit`` entries of the recurring job's history (states and logs), newest first."""
        validate_recurring_id(recurring_id)
        if kind not in (None, "state", "log"):
            raise ConfigurationError(f"kind must be 'state', 'log' or None, got {kind!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise ConfigurationError(f"limit must be an int in 1..10000, got {limit!r}")
        async with self._read_scope() as tx:
            return await tx.recurring_event_list(RecurringEventList(recurring_id, kind, limit=limit))

    # ------------------------------------------------------------------ actions
    async def pause(self, recurring_id: str, *, reason: str | None = None) -> bool:
        """Stop scheduling (Idle); a running occurrence finishes. False when it was paused already."""
        if reason is not None:
            problem = text_problem(reason, 4000) if isinstance(reason, str) else "it is not text"
            if problem is not None:
                raise ConfigurationError(f"pause reason: {problem}")

        async def change(scope: UnitOfWork, job: RecurringJob) -> None:
            why = reason or "paused"
            await write(scope, job, state="Idle", reason=why, next_run=None)
            await scope.tx.recurring_event_insert([state_event(job.id, "Idle", why)])

        return await self._change(recurring_id, change, unless=lambda job: job.state == "Idle")

    async def resume(self, recurring_id: str) -> bool:
        """Schedule again from now (missed occurrences are not run). False when it was not paused."""

        async def change(scope: UnitOfWork, job: RecurringJob) -> None:
            next_run = job.schedule.next_after(await scope.tx.clock_now(), self.calendars)
            state = "Executing" if job.job_id is not None else "Enqueued"
            await write(scope, job, state=state, reason=None, next_run=next_run)
            await scope.tx.recurring_event_insert([state_event(job.id, "Enqueued", "resumed", next_run=_iso(next_run))])

        return await self._change(recurring_id, change, unless=lambda job: job.state != "Idle")

    async def trigger(self, recurring_id: str) -> int:
        """Run an occurrence now (also of a paused job); returns its background job id. The regular
        schedule is not changed. Refused while an occurrence runs (one at a time)."""
        job_ids: list[int] = []

        async def change(scope: UnitOfWork, job: RecurringJob) -> None:
            if job.job_id is not None:
                raise ConfigurationError(
                    f"recurring job {job.id!r} is running (job {job.job_id}); one occurrence runs at a time"
                )
            now = await scope.tx.clock_now()
            job_id = await enqueue_occurrence(scope, job, now)
            if job_id is None:
                raise ConfigurationError(f"recurring job {job.id!r} was triggered at this very instant already")
            stats = replace(job.stats, runs=job.stats.runs + 1, last_scheduled=now, last_job_id=job_id)
            state = "Idle" if job.state == "Idle" else "Executing"
            await write(scope, job, state=state, reason=job.state_reason, job_id=job_id, stats=stats)
            await scope.tx.recurring_event_insert([state_event(job.id, "Executing", "triggered", job_id=job_id)])
            job_ids.append(job_id)

        await self._change(recurring_id, change)
        return job_ids[0]

    async def delete(self, recurring_id: str) -> bool:
        """Delete the recurring job and its history; a running occurrence is waited for or cancelled
        first (see :meth:`options`). False when there was none."""
        validate_recurring_id(recurring_id)
        if await self.try_get(recurring_id) is None:
            return False
        await self._wait_until_idle(recurring_id, deleting=True)
        async with self._write_scope() as scope:
            return await scope.tx.recurring_delete(recurring_id)

    async def run_pass(self) -> PassReport:
        """Record finished occurrences and enqueue due ones once, now (colonies do this on their own
        every ``scheduler_interval``). Not part of a transaction: a pass commits as it goes."""
        if self._transaction is not None:
            raise TransactionError(
                "run_pass() commits as it goes and cannot run inside a transaction; call hive.recurring.run_pass()"
            )
        return await scheduler_pass(self._env, self._jobs, self._calendars)

    # ------------------------------------------------------------------ helpers
    async def _change(
        self,
        recurring_id: str,
        change: Callable[[UnitOfWork, RecurringJob], Any],
        *,
        unless: Callable[[RecurringJob], bool] | None = None,
        idle_only: bool = False,
    ) -> bool:
        validate_recurring_id(recurring_id)
        for _ in range(20):
            async with self._write_scope() as scope:
                record = await scope.tx.recurring_get(RecurringGet(recurring_id, for_update=True))
                if record is None:
                    raise RecurringNotFoundError(recurring_id, self._env.name)
                job = record_to_job(record, self._env.name)
                if unless is not None and unless(job):
                    return False
                if idle_only and job.job_id is not None:
                    if await complete_if_finished(scope, job, self.calendars):
                        continue  # finished meanwhile: change the updated row
                    occurrence = await scope.tx.job_get(JobGet(job.job_id))
                    if occurrence is not None and occurrence.states[-1].name == "Executing":
                        raise JobLockTimeoutError(f"recurring job {recurring_id!r} started a run meanwhile; try again")
                await change(scope, job)
                await prune_history(scope, job)
                return True
        raise JobLockTimeoutError(f"recurring job {recurring_id!r} kept changing; try again")

    async def _complete(self, recurring_id: str) -> bool:
        """Record the job's finished run now (instead of waiting for a colony's scheduler)."""
        async with self._write_scope() as scope:
            record = await scope.tx.recurring_get(RecurringGet(recurring_id, for_update=True))
            if record is None or record.job_id is None:
                return False
            return await complete_if_finished(scope, record_to_job(record, self._env.name), self.calendars)

    async def _wait_until_idle(self, recurring_id: str, *, deleting: bool = False) -> None:
        """Until no occurrence of the job runs: wait for it (or cancel it first), at most the update
        timeout. An occurrence that has not started is left to run as it was created, or, when the
        job is being deleted, cancelled."""
        if self._transaction is not None:
            await self._check_idle_in_transaction(recurring_id, deleting=deleting)
            return
        options = self._options
        deadline = None if options.update_timeout is None else time.monotonic() + options.update_timeout.total_seconds()
        cancelled = False
        while True:
            job = await self.get(recurring_id)
            if job.job_id is None:
                return
            if await self._complete(recurring_id):
                continue
            occurrence = await self._jobs.try_get(job.job_id)
            started = occurrence is not None and occurrence.state.name == "Executing"
            if not started and not deleting:
                return
            if (options.on_running == "cancel" or not started) and not cancelled:
                with contextlib.suppress(HiveMindError):  # it may have ended meanwhile
                    await self._jobs.cancel(job.job_id, reason=f"recurring job {recurring_id} is being changed")
                cancelled = True
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise JobLockTimeoutError(
                    f"recurring job {recurring_id!r}: its run (job {job.job_id}) did not end within "
                    f"{options.update_timeout}; pass on_running='cancel' or a longer update_timeout"
                )
            await asyncio.sleep(options.poll.total_seconds())

    async def _check_idle_in_transaction(self, recurring_id: str, *, deleting: bool) -> None:
        """Inside a transaction nothing can be waited for (the run ends in another transaction):
        a running occurrence is refused; one that has not started is left as it was created, or
        cancelled in this transaction when the job is being deleted."""
        assert self._transaction is not None
        await self._complete(recurring_id)
        job = await self.get(recurring_id)
        if job.job_id is None:
            return
        jobs = self._jobs
        occurrence = await jobs.try_get(job.job_id)
        if occurrence is not None and occurrence.state.name == "Executing":
            raise TransactionError(
                f"recurring job {recurring_id!r} is running (job {job.job_id}); a transaction cannot wait for the "
                "run to end: change it outside the transaction, or after the run"
            )
        if deleting and occurrence is not None and not occurrence.state.final:
            await jobs.cancel(job.job_id, reason=f"recurring job {recurring_id} is being deleted")
