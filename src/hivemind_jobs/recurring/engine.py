"""The recurring-job state machine, run inside storage transactions.

Scheduling -> Enqueued(next run) -> Executing (an occurrence job runs) -> Succeeded/Failed ->
Scheduling ... is stored as the recurring row's state (``Enqueued``, ``Executing`` or ``Idle``
when paused) plus a history of events. Every colony runs :func:`scheduler_pass`; the database
keeps each occurrence exactly once:

- due rows are read ``FOR UPDATE SKIP LOCKED`` (servers; SQLite has one writer), with the
  database clock deciding what is due;
- the key ``(recurring id, scheduled time)`` is inserted in the same transaction as the
  occurrence job; a key that exists means the occurrence was enqueued before and nothing is done;
- the row is written with a compare-and-set on its version and its stored next run.

A colony's own clock is never consulted for any of it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hivemind_jobs.core.ids import new_execution_key
from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.core.job import BackgroundJob, MiddlewareEntry, PropertyValue
from hivemind_jobs.core.retry import RETRY_POLICY_PROPERTY
from hivemind_jobs.core.states import Enqueued, Executing, Failed, State, is_final_state
from hivemind_jobs.errors import ConcurrencyConflictError, HiveMindError, ScheduleError
from hivemind_jobs.lifecycle.changes import created
from hivemind_jobs.lifecycle.machine import elect, save_new
from hivemind_jobs.lifecycle.records import job_from_record
from hivemind_jobs.recurring.model import (
    RECURRING_ID_PROPERTY,
    SCHEDULED_AT_PROPERTY,
    Misfire,
    NextRunBase,
    RecurringDefinition,
    RecurringJob,
    RecurringStats,
)
from hivemind_jobs.storage.protocol import (
    JobGet,
    JobLimitSet,
    OccurrenceInsert,
    RecurringEventPrune,
    RecurringEventRow,
    RecurringGet,
    RecurringList,
    RecurringRecord,
    RecurringWrite,
)

if TYPE_CHECKING:
    from hivemind_jobs.lifecycle.services import EnvironmentServices
    from hivemind_jobs.lifecycle.unit import UnitOfWork, UnitOpener
    from hivemind_jobs.recurring.calendars import CalendarRegistry

__all__ = ["PassReport", "complete_if_finished", "enqueue_occurrence", "record_to_job", "scheduler_pass"]

log = logging.getLogger("hivemind_jobs.recurring")

#: a keyword argument left out (None is a value)
_KEEP: Any = object()
#: most missed occurrences counted one by one before jumping ahead
_MAX_COUNTED = 10_000


def record_to_job(record: RecurringRecord, environment: str) -> RecurringJob:
    return RecurringJob(
        id=record.id,
        environment=environment,
        definition=RecurringDefinition.from_json(record.definition, record.id),
        state=record.state_name,
        state_reason=record.state_reason,
        next_run=record.next_run,
        job_id=record.job_id,
        stats=RecurringStats.from_json(record.stats),
        version=record.version,
        created_at=record.created_at,
        modified_at=record.modified_at,
    )


def run_ended(state_name: str) -> bool:
    """Whether an occurrence job in this state has ended: a final state, or Idle (cancelled)."""
    return state_name == "Idle" or is_final_state(state_name)


def state_event(recurring_id: str, name: str, message: str | None = None, **fields: object) -> RecurringEventRow:
    return RecurringEventRow(recurring_id, "state", name, message, json.dumps(fields, default=str))


def log_event(recurring_id: str, level: int, message: str) -> RecurringEventRow:
    return RecurringEventRow(recurring_id, "log", logging.getLevelName(level), message)


async def write(
    scope: UnitOfWork,
    job: RecurringJob,
    *,
    state: str | None = None,
    reason: str | None = None,
    next_run: datetime | None = _KEEP,
    job_id: int | None = _KEEP,
    stats: RecurringStats | None = None,
    definition: RecurringDefinition | None = None,
    check_next_run: bool = False,
) -> None:
    """Compare-and-set the recurring row (version, and with ``check_next_run`` its next run)."""
    written = await scope.tx.recurring_write(
        RecurringWrite(
            id=job.id,
            definition=(definition or job.definition).to_json(),
            state_name=state or job.state,
            state_reason=reason if state is not None else job.state_reason,
            next_run=job.next_run if next_run is _KEEP else next_run,
            job_id=job.job_id if job_id is _KEEP else job_id,
            stats=(stats or job.stats).to_json(),
            expected_version=job.version,
            expected_next_run=job.next_run if check_next_run else None,
        )
    )
    if not written:
        raise ConcurrencyConflictError(f"recurring job {job.id!r} changed meanwhile; nothing was written")


async def prune_history(scope: UnitOfWork, job: RecurringJob) -> None:
    settings = job.settings
    if settings.keep_states is not None or settings.state_retention is not None:
        await scope.tx.recurring_event_prune(
            RecurringEventPrune(job.id, "state", settings.keep_states, settings.state_retention)
        )
    if settings.keep_logs is not None or settings.log_retention is not None:
        await scope.tx.recurring_event_prune(
            RecurringEventPrune(job.id, "log", settings.keep_logs, settings.log_retention)
        )


def next_after(job: RecurringJob, moment: datetime, calendars: CalendarRegistry) -> datetime:
    following: datetime = job.schedule.next_after(moment, calendars)
    return following


# ----------------------------------------------------------------------------- occurrences


def _occurrence(env: EnvironmentServices, job: RecurringJob, scheduled_at: datetime) -> BackgroundJob:
    definition = job.definition
    properties: dict[str, PropertyValue] = dict(definition.properties)
    properties[RECURRING_ID_PROPERTY] = job.id
    properties[SCHEDULED_AT_PROPERTY] = scheduled_at
    if definition.retry is not None:
        properties[RETRY_POLICY_PROPERTY] = definition.retry
    occurrence = BackgroundJob(
        environment=env.name,
        job_id=None,
        queue=definition.queue,
        priority=definition.priority,
        invocation=Invocation.from_json(definition.invocation),
        execution_id=new_execution_key(),
        states=(),
        properties=properties,
        middleware=MiddlewareEntry.list_from_json(definition.middleware),
        created_at=None,
        modified_at=None,
        lock=None,
    )
    return created(occurrence, env.clock.now())


async def enqueue_occurrence(
    scope: UnitOfWork, job: RecurringJob, scheduled_at: datetime, *, state: State | None = None
) -> int | None:
    """Create the occurrence ``scheduled_at`` of ``job`` (Enqueued, or ``state``) and record its
    key, in the scope's transaction. None when the key exists: it was enqueued before."""
    env = scope.env
    if not await scope.tx.occurrence_insert(OccurrenceInsert(job.id, scheduled_at, None)):
        return None
    occurrence = _occurrence(env, job, scheduled_at)
    reason = f"recurring {job.id}, scheduled {scheduled_at.isoformat()}"
    await elect(occurrence, state or Enqueued(reason=reason), scope)
    await save_new([occurrence], scope)
    assert occurrence.id is not None
    if job.definition.limits is not None:
        await scope.tx.job_limit_set([JobLimitSet.of(occurrence.id, job.definition.limits)])
    return occurrence.id


def missed(job: RecurringJob, now: datetime, calendars: CalendarRegistry) -> tuple[int, datetime]:
    """How many occurrences from the stored next run up to ``now`` are due, and the latest of them
    (counted one by one up to a bound, then found by jumping close to ``now``)."""
    assert job.next_run is not None
    count, latest = 1, job.next_run
    while count < _MAX_COUNTED:
        following = next_after(job, latest, calendars)
        if following > now:
            return count, latest
        count, latest = count + 1, following
    for window in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=366)):
        probe = next_after(job, max(latest, now - window), calendars)
        if probe <= now:
            latest = probe
            while (following := next_after(job, latest, calendars)) <= now:
                latest = following
            break
    return count, latest


async def process_due(scope: UnitOfWork, job: RecurringJob, now: datetime, calendars: CalendarRegistry) -> str:
    """Enqueue (or skip, fail, pause) the due occurrence of ``job``; returns what was done."""
    assert job.next_run is not None
    settings = job.settings
    late = now - job.next_run
    events: list[RecurringEventRow] = []
    stats = job.stats
    policy = None
    count, latest = 1, job.next_run
    if late > settings.misfire_threshold:
        count, latest = missed(job, now, calendars)
        policy = settings.misfire
        if now - latest > scope.env.options.catch_up_window and policy is Misfire.RUN_ONCE:
            policy = Misfire.SKIP
    if policy is None:
        scheduled, skipped = job.next_run, 0
    else:
        scheduled, skipped = latest, count - 1
        stats = replace(stats, misfired=stats.misfired + 1)
        events.append(
            log_event(
                job.id,
                logging.WARNING,
                f"misfired: {count} occurrence(s) from {job.next_run.isoformat()} late by {late}; policy "
                f"{policy.value}",
            )
        )
    if policy is Misfire.IDLE:
        stats = replace(stats, skipped=stats.skipped + count)
        reason = f"misfired: late by {late} (policy idle); resume to schedule again"
        events.append(state_event(job.id, "Idle", reason))
        await write(scope, job, state="Idle", reason=reason, next_run=None, stats=stats, check_next_run=True)
        await scope.tx.recurring_event_insert(events)
        return "idle"
    # Within the threshold every occurrence runs in turn (cron semantics); after a misfire the
    # schedule continues after the latest missed one. For the other bases this is provisional:
    # the next run is computed again when the run ends.
    if settings.next_run_base is not NextRunBase.SCHEDULED:
        following = next_after(job, now, calendars)
    else:
        following = next_after(job, scheduled if policy is None else latest, calendars)
    if policy is Misfire.SKIP:
        stats = replace(stats, skipped=stats.skipped + count)
        events.append(state_event(job.id, "Enqueued", next_run=following.isoformat()))
        await write(scope, job, next_run=following, stats=stats, check_next_run=True)
        await scope.tx.recurring_event_insert(events)
        return "skipped"
    failed = (
        Failed(reason=f"misfired: late by {late}", exception_type="hivemind_jobs.Misfired", message=str(late))
        if policy is Misfire.FAIL
        else None
    )
    job_id = await enqueue_occurrence(scope, job, scheduled, state=failed)
    if job_id is None:  # enqueued before (a previous write of this row was lost): only move on
        events.append(log_event(job.id, logging.WARNING, f"occurrence {scheduled.isoformat()} was enqueued before"))
        await write(scope, job, next_run=following, check_next_run=True)
        await scope.tx.recurring_event_insert(events)
        return "duplicate"
    stats = replace(stats, skipped=stats.skipped + skipped, last_scheduled=scheduled, last_job_id=job_id)
    if failed is not None:
        stats = replace(stats, failed=stats.failed + 1, last_outcome="Failed")
        events.append(state_event(job.id, "Failed", failed.reason, job_id=job_id, scheduled=scheduled.isoformat()))
        events.append(state_event(job.id, "Enqueued", next_run=following.isoformat()))
        await write(scope, job, next_run=following, stats=stats, check_next_run=True)
    else:
        stats = replace(stats, runs=stats.runs + 1)
        events.append(state_event(job.id, "Executing", job_id=job_id, scheduled=scheduled.isoformat()))
        state = None if job.state == "Idle" else "Executing"
        await write(scope, job, state=state, next_run=following, job_id=job_id, stats=stats, check_next_run=True)
    await scope.tx.recurring_event_insert(events)
    return "failed" if failed is not None else "enqueued"


async def complete_if_finished(scope: UnitOfWork, job: RecurringJob, calendars: CalendarRegistry) -> bool:
    """When the running occurrence of ``job`` has ended, record its outcome and schedule the next
    occurrence (Scheduling -> Enqueued); True when it did."""
    assert job.job_id is not None
    record = await scope.tx.job_get(JobGet(job.job_id))
    occurrence = None if record is None else job_from_record(record, scope.env.name, scope.env.codec)
    if occurrence is not None and not run_ended(occurrence.state.name):
        return False
    now = await scope.tx.clock_now()
    outcome = "Missing" if occurrence is None else occurrence.state.name
    started = completed = now
    if occurrence is not None:
        completed = occurrence.state.elected_at or now
        executing = [state for state in occurrence.states if isinstance(state, Executing)]
        started = executing[-1].elected_at or completed if executing else completed
    stats = job.stats
    stats = replace(
        stats,
        succeeded=stats.succeeded + (outcome == "Succeeded"),
        failed=stats.failed + (outcome == "Failed"),
        last_started=started,
        last_completed=completed,
        last_outcome=outcome,
    )
    base = job.settings.next_run_base
    next_run = job.next_run
    if job.state != "Idle" and base is not NextRunBase.SCHEDULED:
        next_run = next_after(job, started if base is NextRunBase.STARTED else completed, calendars)
    events = [state_event(job.id, outcome, job_id=job.job_id), state_event(job.id, "Scheduling")]
    state = "Idle" if job.state == "Idle" else "Enqueued"
    if state == "Enqueued":
        events.append(state_event(job.id, "Enqueued", next_run=None if next_run is None else next_run.isoformat()))
    reason = job.state_reason if state == "Idle" else None
    await write(scope, job, state=state, reason=reason, next_run=next_run, job_id=None, stats=stats)
    await scope.tx.recurring_event_insert(events)
    await prune_history(scope, job)
    return True


# ----------------------------------------------------------------------------- one pass


class PassReport:
    """What one scheduler pass did."""

    def __init__(self) -> None:
        self.completed = 0
        self.enqueued = 0
        self.skipped = 0
        self.failed = 0
        self.paused = 0
        self.errors = 0

    def __repr__(self) -> str:
        return (
            f"<PassReport completed={self.completed} enqueued={self.enqueued} skipped={self.skipped} "
            f"failed={self.failed} paused={self.paused} errors={self.errors}>"
        )


async def scheduler_pass(
    env: EnvironmentServices, units: UnitOpener, calendars: CalendarRegistry, *, batch: int = 50
) -> PassReport:
    """Record finished occurrences, then enqueue every due one (each exactly once)."""

    report = PassReport()
    after = ""
    while True:
        async with env.storage.transaction(readonly=True) as tx:
            running = await tx.recurring_list(RecurringList(after_id=after, limit=batch, running=True))
            ended = []
            for record in running:  # a write transaction only for the runs that ended
                assert record.job_id is not None
                occurrence = await tx.job_get(JobGet(record.job_id))
                if occurrence is None or run_ended(occurrence.states[-1].name):
                    ended.append(record)
        for record in ended:
            try:
                async with units.unit_of_work(implicit=False) as scope:
                    current = await scope.tx.recurring_get(RecurringGet(record.id, for_update=True))
                    if current is None or current.job_id != record.job_id or current.job_id is None:
                        continue
                    if await complete_if_finished(scope, record_to_job(current, env.name), calendars):
                        report.completed += 1
            except (HiveMindError, ScheduleError) as error:
                report.errors += 1
                log.warning("recurring job %r: could not record its finished run: %s", record.id, error)
        if len(running) < batch:
            break
        after = running[-1].id
    if env.storage.capabilities.single_writer:  # look before taking the only write lock
        async with env.storage.transaction(readonly=True) as tx:
            if not await tx.recurring_list(RecurringList(limit=1, due=True)):
                return report
    after = ""
    while True:
        async with units.unit_of_work(implicit=False) as scope:
            due = await scope.tx.recurring_list(RecurringList(after_id=after, limit=batch, due=True))
            if not due:
                break
            now = await scope.tx.clock_now()
            for record in due:
                try:
                    done = await process_due(scope, record_to_job(record, env.name), now, calendars)
                except (ScheduleError, HiveMindError) as error:
                    if isinstance(error, ConcurrencyConflictError):
                        raise
                    report.errors += 1
                    await _pause_broken(scope, record, env, error)
                    continue
                if done == "enqueued":
                    report.enqueued += 1
                elif done == "skipped":
                    report.skipped += 1
                elif done == "failed":
                    report.failed += 1
                elif done == "idle":
                    report.paused += 1
        if len(due) < batch:
            break
        after = due[-1].id
    return report


async def _pause_broken(scope: UnitOfWork, record: RecurringRecord, env: EnvironmentServices, error: Exception) -> None:
    """A recurring job that cannot be scheduled (its stored definition or schedule fails) is paused
    with the reason, instead of failing every pass."""
    reason = f"cannot be scheduled: {error}"
    log.error("recurring job %r %s", record.id, reason)
    written = await scope.tx.recurring_write(
        RecurringWrite(
            id=record.id,
            definition=record.definition,
            state_name="Idle",
            state_reason=reason[:4000],
            next_run=None,
            job_id=record.job_id,
            stats=record.stats,
            expected_version=record.version,
        )
    )
    if written:
        await scope.tx.recurring_event_insert([state_event(record.id, "Idle", reason[:4000])])
