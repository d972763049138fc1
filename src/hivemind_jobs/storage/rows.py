"""What every backend's operations share: the rows they write and the plans of their writes.

A backend only says how it handles time (:class:`Times`: integer microseconds on SQLite, native
timestamps on the servers) and runs the statements; what to write and what it means is decided
here, once:

- rows as bound parameters: states, typed properties (one row, one value column per type), queue
  entries, job rows, recurring rows;
- the plan of a batch of fenced saves: the fence (:func:`fence_saves`), the rows that follow from
  the saves that passed it (:func:`save_writes`, :func:`queue_rows`) and the results
  (:func:`save_results`);
- the claim's walk over queue groups (:class:`ClaimWalk`);
- full job records from their three kinds of rows (:func:`job_records`).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from hivemind_jobs.core.clock import from_microseconds
from hivemind_jobs.core.codec import load_json
from hivemind_jobs.core.job import PropertyType, PropertyValue
from hivemind_jobs.core.throttle import JobLimits
from hivemind_jobs.storage.params import (
    ClaimedJob,
    ContinuationLink,
    JobInsert,
    JobLimitSet,
    JobRecord,
    JobUniqueSet,
    JobUpdate,
    JobUpdated,
    LogPurge,
    OccurrenceInsert,
    PropertyRow,
    QueueClaim,
    QueueClaimStart,
    QueuePointer,
    RecurringEventList,
    RecurringEventRow,
    RecurringWrite,
    StateRow,
    StoredHistory,
    UpdateOutcome,
)

__all__ = [
    "PURGE_QUERIES",
    "AlikeRows",
    "ClaimWalk",
    "InsertWrites",
    "SaveWrites",
    "Times",
    "alike_rows",
    "claim_starts",
    "continuation_links",
    "event_list_params",
    "event_params",
    "fence_outcome",
    "fence_saves",
    "finish_params",
    "histories_by_job",
    "insert_writes",
    "job_records",
    "job_rows",
    "kept_due_ids",
    "lean_claimed_record",
    "lean_revert_params",
    "new_link_rows",
    "new_property_rows",
    "occurrence_params",
    "plain_finishes",
    "pointer_due",
    "property_from_row",
    "property_params",
    "purge_query",
    "queue_rows",
    "recurring_write_params",
    "same",
    "save_results",
    "save_writes",
    "started_record",
    "state_params",
    "unique_set_params",
    "unique_states",
]

T = TypeVar("T")
Row = Sequence[Any]


def same(value: T) -> T:
    """A value that needs no conversion."""
    return value


@dataclass(frozen=True, slots=True)
class Times:
    """How a backend handles time. Its clock values (``now``, due times, heartbeats as read) are
    integer microseconds on SQLite and aware datetimes on the servers."""

    #: an aware datetime as a clock value
    point: Callable[[datetime], Any]
    #: a duration as a difference of clock values
    span: Callable[[timedelta], Any]
    #: a clock value as a bound parameter
    bind: Callable[[Any], Any]
    #: an aware datetime as a bound parameter (``bind(point(value))``)
    encode: Callable[[datetime], Any]


# ----------------------------------------------------------------------------- rows


def state_params(job_id: int, state: StateRow, encode_datetime: Callable[[datetime], Any]) -> dict[str, Any]:
    """The bound parameters of ``job_state_insert`` for one state."""
    return {
        "job_id": job_id,
        "sequence": state.sequence,
        "name": state.name,
        "elected_at": encode_datetime(state.elected_at),
        "reason": state.reason,
        "fields": state.fields,
    }


def property_params(job_id: int, row: PropertyRow, encode_datetime: Callable[[datetime], Any]) -> dict[str, Any]:
    """The bound parameters of ``job_property_upsert`` for one property."""
    params: dict[str, Any] = {
        "job_id": job_id,
        "name": row.name,
        "type": row.type.value,
        "text_value": None,
        "int_value": None,
        "float_value": None,
        "bool_value": None,
        "datetime_value": None,
    }
    value: Any = row.value
    if row.type is PropertyType.TEXT:
        params["text_value"] = value
    elif row.type is PropertyType.UUID:
        params["text_value"] = str(value)
    elif row.type is PropertyType.INT:
        params["int_value"] = value
    elif row.type is PropertyType.FLOAT:
        params["float_value"] = value
    elif row.type is PropertyType.BOOL:
        params["bool_value"] = 1 if value else 0
    else:
        params["datetime_value"] = encode_datetime(value)
    return params


def property_from_row(row: Sequence[Any], decode_datetime: Callable[[Any], datetime]) -> PropertyRow:
    """A property from ``(name, type, text, int, float, bool, datetime)`` columns."""
    name, kind, text_value, int_value, float_value, bool_value, datetime_value = row
    property_type = PropertyType(kind)
    value: PropertyValue
    if property_type is PropertyType.TEXT:
        value = text_value
    elif property_type is PropertyType.UUID:
        value = uuid.UUID(text_value)
    elif property_type is PropertyType.INT:
        value = int(int_value)
    elif property_type is PropertyType.FLOAT:
        value = float(float_value)
    elif property_type is PropertyType.BOOL:
        value = bool(bool_value)
    else:
        value = decode_datetime(datetime_value)
    return PropertyRow(name, property_type, value)


def job_rows(params: Sequence[JobInsert], bound_now: Any, encode: Callable[[datetime], Any]) -> list[dict[str, Any]]:
    """The bound parameters of ``job_insert`` for each job (a job inserted locked is locked now)."""
    return [
        {
            "queue": job.queue,
            "priority": job.priority,
            "execution_id": job.execution_id,
            "state_name": current.name,
            "state_sequence": current.sequence,
            "state_elected_at": encode(current.elected_at),
            "invocation": job.invocation,
            "middleware": job.middleware,
            "function_name": job.function,
            "lock_owner": job.lock_owner,
            "locked_at": bound_now if job.lock_owner is not None else None,
            "now": bound_now,
        }
        for job in params
        for current in (job.states[-1],)
    ]


def queue_rows(
    pointers: Sequence[tuple[int, QueuePointer]], now: Any, kept: Mapping[int, Any], times: Times
) -> list[dict[str, Any]]:
    """The bound parameters of ``queue_upsert`` for each ``(job id, entry)``.

    An entry is due at the due time ``kept`` holds for its job, else at its ``execute_after``, else
    ``delay`` after ``now``: the database clock the operation read, so a relative delay is measured
    on the database's clock and the writer's plays no part.
    """
    bind = times.bind
    bound_now = bind(now)
    rows = []
    for job_id, pointer in pointers:
        due = kept.get(job_id)
        if due is None:
            due = pointer_due(pointer, now, times)
        rows.append(
            {
                "job_id": job_id,
                "queue": pointer.queue,
                "priority": pointer.priority,
                "execution_id": pointer.execution_id,
                "execute_after": bind(due),
                "now": bound_now,
            }
        )
    return rows


def pointer_due(pointer: QueuePointer, now: Any, times: Times) -> Any:
    """When a new entry is due (a clock value): at its ``execute_after``, else ``delay`` after ``now``."""
    if pointer.execute_after is not None:
        return times.point(pointer.execute_after)
    if pointer.delay is not None:
        return now + times.span(pointer.delay)
    return now


def kept_due_ids(pointers: Iterable[tuple[int, QueuePointer]]) -> list[int]:
    """The jobs whose existing queue entry keeps its due time (``queue_due_many`` reads them)."""
    return sorted(job_id for job_id, pointer in pointers if pointer.keep_due)


def continuation_links(rows: Iterable[Row]) -> tuple[ContinuationLink, ...]:
    """Continuation links from ``(parent_id, child_id, fired_state)`` rows."""
    return tuple(
        ContinuationLink(int(parent_id), int(child_id), fired_state) for parent_id, child_id, fired_state in rows
    )


# ----------------------------------------------------------------------------- inserting jobs


@dataclass(slots=True)
class InsertWrites:
    """The rows that go with inserted jobs: their states, properties, queue entries and links to
    the parents they wait for."""

    states: list[dict[str, Any]]
    properties: list[dict[str, Any]]
    pointers: list[dict[str, Any]]
    links: list[dict[str, Any]]


def insert_writes(ids: Sequence[int], params: Sequence[JobInsert], now: Any, times: Times) -> InsertWrites:
    """The rows to write for jobs just inserted as ``ids`` (in the order of ``params``)."""
    encode = times.encode
    bound_now = times.bind(now)
    pairs = list(zip(ids, params, strict=True))
    enqueue = [(job_id, job.enqueue) for job_id, job in pairs if job.enqueue is not None]
    return InsertWrites(
        states=[state_params(job_id, state, encode) for job_id, job in pairs for state in job.states],
        properties=new_property_rows(pairs, encode),
        pointers=queue_rows(enqueue, now, {}, times),
        links=new_link_rows(pairs, bound_now),
    )


def new_property_rows(
    pairs: Iterable[tuple[int, JobInsert]], encode_datetime: Callable[[datetime], Any]
) -> list[dict[str, Any]]:
    """The bound parameters of ``job_property_upsert`` for jobs just inserted, as ``(id, insert)``."""
    return [property_params(job_id, prop, encode_datetime) for job_id, job in pairs for prop in job.properties]


def new_link_rows(pairs: Iterable[tuple[int, JobInsert]], bound_now: Any) -> list[dict[str, Any]]:
    """The bound parameters of ``continuation_insert`` for jobs just inserted that wait for a parent."""
    return [
        {"parent_id": job.awaiting_parent, "child_id": job_id, "now": bound_now}
        for job_id, job in pairs
        if job.awaiting_parent is not None
    ]


@dataclass(frozen=True, slots=True)
class AlikeRows:
    """What every job of a batch of new jobs has alike (:func:`alike_rows`): its states, and its
    queue entry but for the execution id (each job's own); ``pointer`` None: no job has an entry.
    ``columns``: the jobs' rows differ only by their execution id and call (the same queue,
    priority, middleware, function and lock owner as the first job's)."""

    states: tuple[StateRow, ...]
    pointer: QueuePointer | None
    columns: bool
    #: the batch's first job (whose columns every job has when ``columns``)
    first: JobInsert

    def job_columns(self, encode_datetime: Callable[[datetime], Any]) -> dict[str, Any]:
        """The job-row parameters (``job_insert``'s names) every job of a batch alike in its
        ``columns`` shares: all but the execution id, the call and the clock (``now``)."""
        first = self.first
        current = self.states[-1]
        return {
            "queue": first.queue,
            "priority": first.priority,
            "state_name": current.name,
            "state_sequence": current.sequence,
            "state_elected_at": encode_datetime(current.elected_at),
            "middleware": first.middleware,
            "function_name": first.function,
            "lock_owner": first.lock_owner,
        }


def alike_rows(params: Sequence[JobInsert]) -> AlikeRows | None:
    """The history rows and queue entry shared by every job of a batch, as ``create_many`` builds
    its jobs (one tuple of states; entries alike but for the job's own execution id), which a
    backend writes for the whole batch at once instead of row by row; None when the jobs differ."""
    first = params[0]
    states, pointer = first.states, first.enqueue
    columns = (first.queue, first.priority, first.middleware, first.function, first.lock_owner)
    same_columns = True
    for job in params:
        other = job.enqueue
        if job.states is not states:
            return None
        if same_columns and (job.queue, job.priority, job.middleware, job.function, job.lock_owner) != columns:
            same_columns = False
        if other is None or pointer is None:
            if other is not pointer:
                return None
        elif (
            other.execution_id != job.execution_id
            or other.queue != pointer.queue
            or other.priority != pointer.priority
            or other.execute_after != pointer.execute_after
            or other.delay != pointer.delay
        ):
            return None
    return AlikeRows(states, pointer, same_columns, first)


# ----------------------------------------------------------------------------- saving locked jobs


def fence_outcome(row: Sequence[Any] | None, update: JobUpdate, cutoff: Any) -> UpdateOutcome:
    """Whether a save may apply, from the job's ``(execution_id, locked_by, lock_heartbeat)``: the
    heartbeat (in the backend's time unit) must not be older than ``cutoff`` (database clock minus
    the save's lock timeout)."""
    if row is None:
        return UpdateOutcome.NOT_FOUND
    execution_id, locked_by, heartbeat = row
    if locked_by != update.holder:
        return UpdateOutcome.LOCK_LOST
    if execution_id != update.expected_execution_id:
        return UpdateOutcome.EXECUTION_CHANGED
    if heartbeat is None or heartbeat < cutoff:
        return UpdateOutcome.LOCK_EXPIRED
    return UpdateOutcome.SAVED


def fence_saves(
    params: Sequence[JobUpdate], fence: Mapping[int, Row], now: Any, span: Callable[[timedelta], Any]
) -> tuple[list[UpdateOutcome], list[JobUpdate]]:
    """Each save's outcome, from the fence rows ``{job id: (execution_id, locked_by,
    lock_heartbeat)}`` read with the jobs locked, and the saves that passed (in order)."""
    outcomes = [fence_outcome(fence.get(update.job_id), update, now - span(update.lock_timeout)) for update in params]
    saved = [update for update, outcome in zip(params, outcomes, strict=True) if outcome is UpdateOutcome.SAVED]
    return outcomes, saved


@dataclass(slots=True)
class SaveWrites:
    """What the saves that passed their fence write, as bound parameters.

    ``enqueue`` holds the new queue entries as ``(job id, entry)``: their rows need the due times
    that entries which keep theirs have now (:func:`kept_due_ids`, then :func:`queue_rows`).
    ``changed`` (jobs with a new state: their waiting children are read) and ``released`` (jobs
    whose lock is released: the continuations that fired meanwhile are read) go to
    ``continuation_links_many``.
    """

    updates: list[dict[str, Any]]
    states: list[dict[str, Any]]
    properties: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    enqueue: list[tuple[int, QueuePointer]]
    dequeued: list[int]
    links: list[dict[str, Any]]
    changed: list[int]
    released: list[int]


def _update_params(update: JobUpdate, bound_now: Any, encode: Callable[[datetime], Any]) -> dict[str, Any]:
    """The bound parameters of ``job_update`` for one save."""
    current = update.new_states[-1] if update.new_states else None
    return {
        "job_id": update.job_id,
        "queue": update.queue,
        "priority": update.priority,
        "execution_id": update.execution_id,
        "state_name": current.name if current else None,
        "state_sequence": current.sequence if current else None,
        "state_elected_at": encode(current.elected_at) if current else None,
        "release_lock": update.release_lock,
        "now": bound_now,
    }


def save_writes(saved: Sequence[JobUpdate], now: Any, times: Times) -> SaveWrites:
    """The rows the saves that passed their fence write (see :class:`SaveWrites`)."""
    encode = times.encode
    bound_now = times.bind(now)
    return SaveWrites(
        updates=[_update_params(update, bound_now, encode) for update in saved],
        states=[state_params(u.job_id, state, encode) for u in saved for state in u.new_states],
        properties=[property_params(u.job_id, prop, encode) for u in saved for prop in u.set_properties],
        removed=[{"job_id": u.job_id, "name": name} for u in saved for name in u.removed_properties],
        enqueue=[(u.job_id, pointer) for u in saved if (pointer := u.enqueue) is not None],
        dequeued=[u.job_id for u in saved if u.enqueue is None and u.dequeue],
        links=[
            {"parent_id": u.awaiting_parent, "child_id": u.job_id, "now": bound_now}
            for u in saved
            if u.awaiting_parent is not None
        ],
        changed=[u.job_id for u in saved if u.new_states],
        released=[u.job_id for u in saved if u.release_lock],
    )


def plain_finishes(params: Sequence[JobUpdate]) -> bool:
    """Whether every save only ends a run: one new state, the lock released (all by one holder),
    nothing else changed (what ``job_finish_fenced`` writes)."""
    holder = params[0].holder if params else None
    return all(
        update.release_lock
        and update.holder == holder
        and len(update.new_states) == 1
        and not update.set_properties
        and not update.removed_properties
        and update.enqueue is None
        and not update.dequeue
        and update.awaiting_parent is None
        for update in params
    )


def finish_params(params: Sequence[JobUpdate], encode: Callable[[datetime], Any]) -> dict[str, Any]:
    """The parameters of ``job_finish_fenced`` for :func:`plain_finishes` saves."""
    states = [update.new_states[0] for update in params]
    return {
        "job_id": [update.job_id for update in params],
        "expected": [update.expected_execution_id for update in params],
        "lock_us": [update.lock_timeout // _MICROSECOND for update in params],
        "holder": params[0].holder,
        "execution_id": [update.execution_id for update in params],
        "state_name": [state.name for state in states],
        "state_sequence": [state.sequence for state in states],
        "state_elected_at": [encode(state.elected_at) for state in states],
        "reason": [state.reason for state in states],
        "fields": [state.fields for state in states],
    }


def save_results(
    params: Sequence[JobUpdate],
    outcomes: Sequence[UpdateOutcome],
    found: Iterable[ContinuationLink],
    modified_at: datetime,
) -> list[JobUpdated]:
    """The result of each save, with the links ``continuation_links_many`` found: a link not
    fired is a child waiting on a job whose state changed, a fired one a parent whose trigger
    fired while the released job was locked."""
    children: dict[int, list[int]] = {}
    fired: dict[int, list[ContinuationLink]] = {}
    for link in found:
        if link.fired_state is None:
            children.setdefault(link.parent_id, []).append(link.child_id)
        else:
            fired.setdefault(link.child_id, []).append(link)
    results: list[JobUpdated] = []
    for update, outcome in zip(params, outcomes, strict=True):
        if outcome is not UpdateOutcome.SAVED:
            results.append(JobUpdated(outcome))
            continue
        results.append(
            JobUpdated(
                UpdateOutcome.SAVED,
                modified_at=modified_at,
                lock_heartbeat=None if update.release_lock else modified_at,
                children=tuple(children.get(update.job_id, ())),
                fired=tuple(fired.get(update.job_id, ())),
            )
        )
    return results


# ----------------------------------------------------------------------------- claiming


_MICROSECOND = timedelta(microseconds=1)

#: the lock timeout of a start's save (unused: the claim has just taken the lock)
_NO_TIMEOUT = timedelta(0)

#: claim order: priority, due time, id
_CLAIM_ORDER = operator.itemgetter(2, 4, 0)


class ClaimWalk:
    """The claim's walk over its queue groups, the same on every backend.

    Groups are claimed from in order, until ``limit`` jobs are claimed. A backend asks for the queues
    of the next group (:meth:`next_queues`: each queue once, in the first group that names it) and
    hands back the due entries it read from them (:meth:`add`), at most :attr:`remaining` per read,
    as rows ``(job_id, queue, priority, execution_id, execute_after, enqueued_at, the job's current
    execution_id, state_sequence, state_name, the clock, limit_key, limit_max, rate_key, rate_max,
    rate_period)``. They are taken best first (priority, due time, id); an entry whose execution id
    is stale (not the job's) is taken too, to be deleted, but not claimed. A claimed job with limits
    is kept only if :meth:`apply_limits` finds room for it, and only in one of the first ``limit``
    less ``ahead`` places of a :class:`QueueClaimStart` (the others start jobs ahead of their drones).
    """

    __slots__ = ("_decode", "_groups", "_limit", "_limited_places", "_seen", "claimed", "current", "limits", "taken")

    def __init__(self, params: QueueClaim | QueueClaimStart, decode: Callable[[Any], datetime]) -> None:
        self._groups: Iterator[tuple[str, ...]] = iter(params.groups)
        self._limit = params.limit
        self._limited_places = params.limit - (params.ahead if isinstance(params, QueueClaimStart) else 0)
        self._seen: set[str] = set()
        self._decode = decode
        #: the entries claimed so far, best first per group
        self.claimed: list[ClaimedJob] = []
        #: the job ids of every entry taken (claimed or stale): their queue entries are deleted
        self.taken: list[int] = []
        #: job id -> (state_sequence, state_name) of each claimed job as read by the claim
        self.current: dict[int, tuple[int, str]] = {}
        #: job id -> the limits of each claimed job that has any (see :meth:`apply_limits`)
        self.limits: dict[int, JobLimits] = {}

    @property
    def remaining(self) -> int:
        return self._limit - len(self.claimed)

    def next_queues(self) -> list[str] | None:
        """The queues of the next group not seen in an earlier one; None when the walk is done."""
        while self.remaining > 0:
            group = next(self._groups, None)
            if group is None:
                return None
            queues = [queue for queue in dict.fromkeys(group) if queue not in self._seen]
            self._seen.update(queues)
            if queues:
                return queues
        return None

    def rest(self, current: Sequence[str]) -> tuple[tuple[str, ...], ...]:
        """The groups still to walk, starting with the current one (whose queues are ``current``,
        as :meth:`next_queues` gave them): a new walk over them claims what this one would from
        here on."""
        seen = self._seen
        later = (tuple(queue for queue in group if queue not in seen) for group in self._groups)
        return (tuple(current), *(group for group in later if group))

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Take the entries read for the current group, best first, until the limit is reached."""
        rows.sort(key=_CLAIM_ORDER)
        decode, claimed, taken, limit, current = self._decode, self.claimed, self.taken, self._limit, self.current
        for row in rows:
            if len(claimed) >= limit:
                break
            job_id = row[0]
            taken.append(job_id)
            if row[3] == row[6]:
                claimed.append(ClaimedJob(job_id, row[1], row[2], row[3], decode(row[4]), decode(row[5])))
                current[job_id] = (int(row[7]), row[8])
                if row[10] is not None or row[12] is not None:
                    self.limits[job_id] = JobLimits(row[10], row[11], row[12], row[13], row[14])

    def limit_keys(self) -> tuple[list[str], list[str]]:
        """The concurrency keys and the rate keys of the claimed jobs, each sorted."""
        concurrency = {limits.limit_key for limits in self.limits.values() if limits.limit_key is not None}
        rate = {limits.rate_key for limits in self.limits.values() if limits.rate_key is not None}
        return sorted(concurrency), sorted(rate)

    def apply_limits(
        self,
        running: Mapping[str, int],
        starts: Mapping[str, Sequence[datetime]],
        now: datetime,
        *,
        unavailable: frozenset[str] = frozenset(),
    ) -> list[str]:
        """Keep the claimed jobs that fit their limits, best first, and put the others back (their
        entries are neither taken nor claimed: they stay in the queue, in their place).

        ``running`` counts the Executing jobs of each concurrency key, ``starts`` lists the recorded
        starts of each rate key, both read under the keys' locks at ``now``. A job fits while fewer
        than its ``limit_max`` jobs of its key run (with the ones kept before it) and fewer than its
        ``rate_max`` starts of its rate key were recorded after ``now`` minus its period. Returns the
        rate key of each kept job that has one: a start to record at ``now``. A job with a key in
        ``unavailable`` (its lock could not be taken) is put back whatever the counts, and so is
        one that would take a place started ahead of its drone (a job held there would count
        against its limits before it runs, and start later than its rate limit recorded).
        """
        used = dict(running)
        recorded: dict[str, int] = {}
        to_record: list[str] = []
        dropped: set[int] = set()
        place = 0  # of the entry: how many before it were kept or had limits (a conservative count)
        for entry in self.claimed:
            limits = self.limits.get(entry.job_id)
            if limits is None:
                place += 1
                continue
            if place >= self._limited_places:
                dropped.add(entry.job_id)
                continue
            place += 1
            key = limits.limit_key
            if unavailable and (key in unavailable or limits.rate_key in unavailable):
                dropped.add(entry.job_id)
                continue
            if key is not None and used.get(key, 0) >= (limits.limit_max or 0):
                dropped.add(entry.job_id)
                continue
            rate_key = limits.rate_key
            if rate_key is not None:
                since = now - timedelta(milliseconds=limits.rate_period_ms or 0)
                count = sum(1 for at in starts.get(rate_key, ()) if at > since) + recorded.get(rate_key, 0)
                if count >= (limits.rate_max or 0):
                    dropped.add(entry.job_id)
                    continue
                recorded[rate_key] = recorded.get(rate_key, 0) + 1
                to_record.append(rate_key)
            if key is not None:
                used[key] = used.get(key, 0) + 1
        if dropped:
            self.claimed = [entry for entry in self.claimed if entry.job_id not in dropped]
            self.taken = [job_id for job_id in self.taken if job_id not in dropped]
            for job_id in dropped:
                del self.current[job_id]
        return to_record

    def rate_horizon(self, now: datetime) -> datetime:
        """The time before which no claimed job's rate limit looks: older starts of their keys
        can be pruned."""
        longest = max((limits.rate_period_ms or 0 for limits in self.limits.values()), default=0)
        return now - timedelta(milliseconds=longest)

    def enqueued(self) -> list[ClaimedJob]:
        """The claimed entries whose jobs are still Enqueued (a start claims only those)."""
        current = self.current
        return [entry for entry in self.claimed if current[entry.job_id][1] == "Enqueued"]


def claim_starts(
    params: QueueClaimStart, entries: Sequence[ClaimedJob], records: Mapping[int, JobRecord]
) -> list[JobUpdate]:
    """Set each entry's record and call ``params.start`` for it; the saves that start the jobs
    it started (their lock, just taken, is kept)."""
    updates: list[JobUpdate] = []
    start, owner = params.start, params.owner
    for entry in entries:
        record = entry.record = records.get(entry.job_id)
        if record is None:
            continue
        begun = start(entry, record)
        if begun is None:
            continue
        updates.append(
            JobUpdate(
                job_id=entry.job_id,
                holder=owner,
                expected_execution_id=entry.execution_id,
                lock_timeout=_NO_TIMEOUT,
                queue=record.queue,
                priority=record.priority,
                execution_id=begun.execution_id,
                new_states=(begun.state,),
            )
        )
    return updates


def lean_claimed_record(row: Row, owner: str, now: datetime, decode: Callable[[Any], datetime]) -> JobRecord:
    """The record of a job ``queue_claim_start_lean`` started, as it was before the statement (its
    history without the Executing state, decoded when read), locked by ``owner`` since ``now``.
    The times in its JSON columns are microseconds since 1970."""
    properties = row[19]
    return started_record(
        row,
        owner,
        now,
        decode,
        StoredHistory(row[18], _history_rows, row[15], row[16]),
        tuple(property_from_row(values, from_microseconds) for values in (load_json(properties) if properties else ())),
    )


def _history_rows(text: str) -> tuple[StateRow, ...]:
    """A history aggregated as JSON (``[[sequence, name, microseconds since 1970, reason, fields], ...]``)."""
    return tuple(
        StateRow(sequence, name, from_microseconds(at), reason, fields)
        for sequence, name, at, reason, fields in load_json(text)
    )


def started_record(
    row: Row,
    owner: str,
    now: datetime,
    decode: Callable[[Any], datetime],
    states: Sequence[StateRow],
    properties: tuple[PropertyRow, ...],
) -> JobRecord:
    """The record of a job a claim started in its own statements (a row shaped as
    ``queue_claim_start_lean``'s), with its history before the start and its properties."""
    return JobRecord(
        id=row[0],
        queue=row[9],
        priority=row[10],
        execution_id=row[3],
        invocation=row[11],
        middleware=row[12],
        created_at=decode(row[13]),
        modified_at=decode(row[14]),
        locked_by=owner,
        locked_at=now,
        lock_heartbeat=now,
        states=states,
        properties=properties,
        lock_acquired=True,
    )


def lean_revert_params(row: Row) -> dict[str, Any]:
    """The parameters of ``queue_start_revert`` for a job ``queue_claim_start_lean`` started: its
    execution and state as they were before."""
    return {
        "job_id": row[0],
        "execution_id": row[3],
        "modified_at": row[14],
        "state_name": row[15],
        "state_sequence": row[16],
        "state_elected_at": row[17],
    }


def start_writes(
    updates: Sequence[JobUpdate], claim: Mapping[str, Any], encode: Callable[[datetime], Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows that write the saves :func:`claim_starts` made: the parameters of
    ``queue_start_claimed`` (each job's new execution and state, and the claim's lock: ``claim``
    holds its ``owner`` and ``now``), and those of ``job_state_insert``."""
    jobs: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for update in updates:
        (state,) = update.new_states
        elected_at = encode(state.elected_at)
        jobs.append(
            {
                "job_id": update.job_id,
                "execution_id": update.execution_id,
                "state_name": state.name,
                "state_sequence": state.sequence,
                "state_elected_at": elected_at,
                **claim,
            }
        )
        states.append(state_params(update.job_id, state, encode))
    return jobs, states


# ----------------------------------------------------------------------------- records


def histories_by_job(
    state_rows: Iterable[Row], property_rows: Iterable[Row], decode: Callable[[Any], datetime]
) -> tuple[dict[int, list[StateRow]], dict[int, list[PropertyRow]]]:
    """``job_state_select_many`` and ``job_property_select_many`` rows as each job's history and
    properties, in the rows' order."""
    states: dict[int, list[StateRow]] = {}
    for job_id, sequence, name, elected_at, reason, fields in state_rows:
        states.setdefault(job_id, []).append(StateRow(sequence, name, decode(elected_at), reason, fields))
    properties: dict[int, list[PropertyRow]] = {}
    for row in property_rows:
        properties.setdefault(row[0], []).append(property_from_row(row[1:], decode))
    return states, properties


def job_records(
    state_rows: Iterable[Row],
    property_rows: Iterable[Row],
    rows: Iterable[Row],
    acquired: set[int],
    decode: Callable[[Any], datetime],
) -> dict[int, JobRecord]:
    """Full records by id, from ``job_state_select_many``, ``job_property_select_many`` and
    ``job_select_many`` rows; ``acquired``: the jobs whose lock the reader has just taken."""
    states, properties = histories_by_job(state_rows, property_rows, decode)
    records: dict[int, JobRecord] = {}
    for row in rows:
        (
            job_id,
            queue,
            priority,
            execution_id,
            invocation,
            middleware,
            created_at,
            modified_at,
            locked_by,
            locked_at,
            heartbeat,
        ) = row
        records[job_id] = JobRecord(
            id=job_id,
            queue=queue,
            priority=priority,
            execution_id=execution_id,
            invocation=invocation,
            middleware=middleware,
            created_at=decode(created_at),
            modified_at=decode(modified_at),
            locked_by=locked_by,
            locked_at=decode(locked_at) if locked_at is not None else None,
            lock_heartbeat=decode(heartbeat) if heartbeat is not None else None,
            states=tuple(states.get(job_id, ())),
            properties=tuple(properties.get(job_id, ())),
            lock_acquired=job_id in acquired,
        )
    return records


# ----------------------------------------------------------------------------- maintenance, recurring

#: table -> the named query that purges it
PURGE_QUERIES = {
    "job_log": "job_log_purge",
    "daemon_log": "daemon_log_purge",
    "recurring_occurrence": "recurring_occurrence_purge",
}


def purge_query(params: LogPurge) -> str:
    """The named query that purges ``params.table`` (one of :data:`PURGE_QUERIES`)."""
    query = PURGE_QUERIES.get(params.table)
    if query is None:
        raise ValueError(f"cannot purge {params.table!r}; one of {', '.join(PURGE_QUERIES)}")
    return query


def event_list_params(params: RecurringEventList) -> dict[str, Any]:
    return {
        "recurring_id": params.recurring_id,
        "kind": params.kind,
        "before_id": params.before_id,
        "limit": params.limit,
    }


def recurring_write_params(params: RecurringWrite, now: Any, bind: Callable[[datetime], Any]) -> dict[str, Any]:
    """The parameters of ``recurring_insert`` / ``recurring_update`` (times through ``bind``)."""
    expected = params.expected_next_run
    return {
        "id": params.id,
        "definition": params.definition,
        "state_name": params.state_name,
        "state_reason": params.state_reason,
        "next_run": bind(params.next_run) if params.next_run is not None else None,
        "job_id": params.job_id,
        "stats": params.stats,
        "now": now,
        "expected_version": params.expected_version,
        "check_next_run": int(expected is not None),
        "expected_next_run": bind(expected) if expected is not None else None,
    }


def occurrence_params(params: OccurrenceInsert, now: Any, bind: Callable[[datetime], Any]) -> dict[str, Any]:
    return {
        "recurring_id": params.recurring_id,
        "scheduled_at": bind(params.scheduled_at),
        "job_id": params.job_id,
        "now": now,
    }


def event_params(rows: Sequence[RecurringEventRow], now: Any) -> list[dict[str, Any]]:
    return [
        {
            "recurring_id": row.recurring_id,
            "kind": row.kind,
            "name": row.name,
            "message": row.message,
            "fields": row.fields,
            "now": now,
        }
        for row in rows
    ]


def unique_states(stored: str) -> tuple[str, ...]:
    """The state names of a unique key's row (stored comma-separated)."""
    return tuple(name for name in stored.split(",") if name)


def unique_set_params(params: JobUniqueSet, bind: Callable[[datetime], Any]) -> dict[str, Any]:
    return {
        "unique_key": params.unique_key,
        "job_id": params.job_id,
        "states": ",".join(params.states),
        "expires_at": bind(params.expires_at) if params.expires_at is not None else None,
    }


def limit_set_params(params: Sequence[JobLimitSet]) -> list[dict[str, Any]]:
    return [
        {
            "job_id": row.job_id,
            "limit_key": row.limit_key,
            "limit_max": row.limit_max,
            "rate_key": row.rate_key,
            "rate_max": row.rate_max,
            "rate_period": row.rate_period_ms,
        }
        for row in params
    ]
