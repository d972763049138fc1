"""The records the storage operations take and give: one parameter object per operation, and the
rows and records it reads or writes.

They are plain dataclasses with no behaviour, shared by the engine and every backend;
:mod:`hivemind_jobs.storage.protocol` re-exports them next to the operations that use them. Times
are timezone-aware UTC ``datetime`` values; JSON travels as ``str``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from hivemind_jobs.core.job import PropertyType, PropertyValue
from hivemind_jobs.core.throttle import JobLimits

if TYPE_CHECKING:
    from hivemind_jobs.query.conditions import Condition
    from hivemind_jobs.query.order import Order

__all__ = [
    "ClaimStart",
    "ClaimStarted",
    "ClaimedJob",
    "ColonyRecord",
    "ColonyUpsert",
    "ContinuationLink",
    "ContinuationMark",
    "DaemonLogList",
    "DaemonLogRecord",
    "DaemonLogRow",
    "JobActionInsert",
    "JobActionList",
    "JobActionRecord",
    "JobDataGet",
    "JobDataItem",
    "JobDataList",
    "JobDataSet",
    "JobGet",
    "JobHeartbeat",
    "JobInsert",
    "JobInserted",
    "JobLimitSet",
    "JobLockRelease",
    "JobLockReleased",
    "JobLockTakeover",
    "JobLogList",
    "JobLogRecord",
    "JobLogRow",
    "JobPurge",
    "JobQueues",
    "JobRecord",
    "JobSearch",
    "JobStateHistogram",
    "JobStateSince",
    "JobUniqueRecord",
    "JobUniqueSet",
    "JobUpdate",
    "JobUpdated",
    "LeaseAcquire",
    "LogPurge",
    "OccurrenceInsert",
    "PendingInserts",
    "PropertyRow",
    "QueueClaim",
    "QueueClaimStart",
    "QueuePause",
    "QueuePauseRecord",
    "QueuePointer",
    "QueueStat",
    "RecurringEventList",
    "RecurringEventPrune",
    "RecurringEventRecord",
    "RecurringEventRow",
    "RecurringGet",
    "RecurringList",
    "RecurringRecord",
    "RecurringWrite",
    "StartTemplates",
    "StateRow",
    "StoredHistory",
    "UpdateOutcome",
]


# ----------------------------------------------------------------------------- rows and records


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class StateRow:
    sequence: int
    name: str
    elected_at: datetime
    reason: str | None
    fields: str  # JSON object of the state's persisted fields


class StoredHistory(Sequence[StateRow]):
    """A job's history as one stored text, decoded into rows the first time they are read: a
    claimed job that only runs never needs them. ``current_name`` and ``current_sequence`` are its
    last state's, known without decoding (the job row has them)."""

    __slots__ = ("_decode", "_rows", "_text", "current_name", "current_sequence")

    def __init__(
        self, text: str | None, decode: Callable[[str], tuple[StateRow, ...]], current_name: str, current_sequence: int
    ) -> None:
        self._text = text
        self._decode = decode
        self._rows: tuple[StateRow, ...] | None = None
        self.current_name = current_name
        self.current_sequence = current_sequence

    @property
    def rows(self) -> tuple[StateRow, ...]:
        rows = self._rows
        if rows is None:
            rows = self._rows = self._decode(self._text) if self._text is not None else ()
        return rows

    @overload
    def __getitem__(self, index: int) -> StateRow: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[StateRow, ...]: ...
    def __getitem__(self, index: int | slice) -> StateRow | tuple[StateRow, ...]:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[StateRow]:
        return iter(self.rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoredHistory):
            return self.rows == other.rows
        return self.rows == other if isinstance(other, tuple) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by its rows, as the tuple it stands for

    def __repr__(self) -> str:
        return repr(self.rows)


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class PropertyRow:
    name: str
    type: PropertyType
    value: PropertyValue


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class QueuePointer:
    """A queue entry: the job may be claimed from ``queue`` once it is due.

    The due time is ``execute_after`` when given, else the database clock of the writing operation
    plus ``delay`` (none: due at once). ``keep_due``: an entry the job already has keeps its due
    time (a job moved to another queue or priority without a new state).
    """

    queue: str
    priority: int
    execution_id: str
    execute_after: datetime | None = None
    #: resolved against the database clock, never the writer's: a relative delay stays relative
    delay: timedelta | None = None
    keep_due: bool = False


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class JobRecord:
    id: int
    queue: str
    priority: int
    execution_id: str
    invocation: str
    middleware: str
    created_at: datetime
    modified_at: datetime
    locked_by: str | None
    locked_at: datetime | None
    lock_heartbeat: datetime | None
    #: oldest first; a tuple, or a :class:`StoredHistory` still to decode
    states: Sequence[StateRow]
    properties: tuple[PropertyRow, ...]
    #: with JobGet.lock_requester: whether the requester holds the lock now
    lock_acquired: bool = False


@dataclass(frozen=True, slots=True)
class ContinuationLink:
    """A child waiting on a parent; ``fired_state`` is set when the parent's trigger found it locked."""

    parent_id: int
    child_id: int
    fired_state: str | None = None


# ----------------------------------------------------------------------------- parameters


class PendingInserts(Sequence["JobInsert"]):
    """The rows of a batch of new jobs, built in order as a backend asks for them: the first part
    can be at the database while the next one is built (its calls checked and encoded). Building
    raises what checking a call raises; a backend that gets this sequence is in a transaction of
    its own, which that error rolls back (see ``Capabilities.inserts_in_parts``). Indexing,
    iterating or :meth:`rows` past what was built builds the rows up to there.

    ``most_bytes``: the most text one job of the batch can store (its call's JSON under the
    argument limit, and what all the batch's jobs share), so a backend knows a part of any single
    job fits whatever the calls still to be built hold."""

    __slots__ = ("_build", "_built", "_count", "most_bytes")

    def __init__(self, count: int, build: Callable[[int, int], list[JobInsert]], most_bytes: int) -> None:
        self._count = count
        self._build = build
        self._built: list[JobInsert] = []
        self.most_bytes = most_bytes

    def __len__(self) -> int:
        return self._count

    def rows(self, start: int, end: int) -> list[JobInsert]:
        """Rows ``start`` to ``end`` (exclusive), built now if they were not."""
        built = self._built
        if end > len(built):
            built.extend(self._build(len(built), min(end, self._count)))
        return built[start:end]

    def _all(self) -> list[JobInsert]:
        self.rows(self._count, self._count)
        return self._built

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __iter__(self) -> Iterator[JobInsert]:
        return iter(self._all())


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class JobInsert:
    queue: str
    priority: int
    execution_id: str
    invocation: str
    middleware: str
    #: the called function as ``module:qualname`` (``Invocation.display_name``), searchable
    function: str
    states: tuple[StateRow, ...]
    properties: tuple[PropertyRow, ...]
    enqueue: QueuePointer | None = None
    awaiting_parent: int | None = None
    lock_owner: str | None = None


@dataclass(frozen=True, slots=True)
class JobInserted:
    id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobGet:
    job_id: int
    #: try to take the lock for this requester (a lock held by someone else is never taken)
    lock_requester: str | None = None
    #: lock the row for the rest of the transaction (parents read while registering a child)
    for_update: bool = False


class UpdateOutcome(enum.Enum):
    SAVED = "saved"
    NOT_FOUND = "not_found"
    LOCK_LOST = "lock_lost"  # another holder, or no lock at all
    LOCK_EXPIRED = "lock_expired"  # still ours, but no heartbeat within the lock timeout
    EXECUTION_CHANGED = "execution_changed"  # fencing token mismatch


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class JobUpdate:
    """Save a locked job: fenced by (id, expected execution id, holder, lock freshness)."""

    job_id: int
    holder: str
    expected_execution_id: str
    lock_timeout: timedelta
    queue: str
    priority: int
    execution_id: str
    new_states: tuple[StateRow, ...] = ()
    set_properties: tuple[PropertyRow, ...] = ()
    removed_properties: tuple[str, ...] = ()
    #: replace the job's queue entry (None with ``dequeue``: remove it)
    enqueue: QueuePointer | None = None
    dequeue: bool = False
    awaiting_parent: int | None = None
    release_lock: bool = False


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class JobUpdated:
    outcome: UpdateOutcome
    modified_at: datetime | None = None
    lock_heartbeat: datetime | None = None
    #: when the state changed: children waiting on this job (not yet fired)
    children: tuple[int, ...] = ()
    #: when the lock was released: parents whose trigger fired while this job was locked
    fired: tuple[ContinuationLink, ...] = ()


@dataclass(frozen=True, slots=True)
class JobLockRelease:
    job_id: int
    holder: str


@dataclass(frozen=True, slots=True)
class JobLockReleased:
    released: bool
    fired: tuple[ContinuationLink, ...] = ()


@dataclass(frozen=True, slots=True)
class JobHeartbeat:
    job_ids: tuple[int, ...]
    holder: str
    lock_timeout: timedelta


@dataclass(frozen=True, slots=True)
class ContinuationMark:
    """Set a link's ``fired_state`` (None: waiting again), or with ``delete`` remove the link."""

    parent_id: int
    child_id: int
    fired_state: str | None = None
    delete: bool = False


@dataclass(frozen=True, slots=True)
class JobDataGet:
    job_id: int
    name: str


@dataclass(frozen=True, slots=True)
class JobStateHistogram:
    """How many jobs entered ``state`` (and are still in it) in each ``bucket`` since ``since``:
    bucket ``n`` counts those elected from ``since + n * bucket`` on (read through the state index)."""

    state: str
    since: datetime
    bucket: timedelta


@dataclass(frozen=True, slots=True)
class JobStateSince:
    """How many jobs of each queue entered ``state`` (and are still in it) since ``since``."""

    state: str
    since: datetime


@dataclass(frozen=True, slots=True)
class JobDataList:
    """The data items of a job by name (first ``limit``, in name order)."""

    job_id: int
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class JobDataItem:
    name: str
    #: the length of the stored JSON text, in characters
    size: int


@dataclass(frozen=True, slots=True)
class JobDataSet:
    job_id: int
    name: str
    value: str  # JSON


@dataclass(frozen=True, slots=True)
class JobLogRow:
    job_id: int
    level: int
    message: str
    logger: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    traceback: str | None = None
    created_at: datetime | None = None  # None: now (database clock)


@dataclass(frozen=True, slots=True)
class JobLogRecord:
    id: int
    job_id: int
    level: int
    message: str
    logger: str | None
    exception_type: str | None
    exception_message: str | None
    traceback: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobLogList:
    job_id: int
    min_level: int = 0
    after_id: int = 0
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class JobActionInsert:
    """A request to a running job's drone (cancel with a requested state, ...)."""

    job_id: int
    execution_id: str
    kind: str
    payload: str  # JSON
    requested_by: str | None = None


@dataclass(frozen=True, slots=True)
class JobActionRecord:
    id: int
    job_id: int
    execution_id: str
    kind: str
    payload: str
    requested_by: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobActionList:
    job_ids: tuple[int, ...]
    limit: int = 100


@dataclass(frozen=True, slots=True)
class QueueClaim:
    """Claim up to ``limit`` due jobs: groups in order, then priority, then due time, then id.

    Claimed entries leave the queue and their jobs are locked by ``owner`` (still Enqueued: the
    claimer moves them to Executing). Jobs locked by someone else are skipped.
    """

    groups: tuple[tuple[str, ...], ...]
    limit: int
    owner: str
    #: also return each claimed job's full record (saves the worker a round trip)
    with_records: bool = False


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class ClaimStart:
    """How a claimed job starts: its new execution id and the state appended to its history."""

    execution_id: str
    state: StateRow


@dataclass(frozen=True, slots=True)
class QueueClaimStart:
    """Claim up to ``limit`` due jobs as :class:`QueueClaim` with ``with_records`` does, and start
    them in the same operation: ``start(entry, record)`` is called once per claimed job, in claim
    order, with its record as claimed (locked, still Enqueued); the execution id and state it
    returns are written under the lock the claim has just taken (nobody else can have changed the
    job since), None leaves the job locked and unchanged for the caller to deal with. ``start``
    may run on the backend's own thread, so it must only compute.

    Returns the claimed entries with their records as read before the starts; an entry without a
    record was taken but not claimed (its job is not Enqueued), and is not locked.
    """

    groups: tuple[tuple[str, ...], ...]
    limit: int
    owner: str
    start: Callable[[ClaimedJob, JobRecord], ClaimStart | None]
    #: for a backend that starts the jobs in its claim statement itself (PostgreSQL) instead of
    #: calling ``start`` (it may still call ``start`` for a claim that needs its general path):
    #: the execution ids and Executing fields of the first ``limit`` starts in claim order
    #: (:class:`StartTemplates`), and ``adopt(entry, record, started)``, called once per job so
    #: started, in claim order, with its record as read before the start (locked by ``owner``);
    #: False means the job cannot run: the backend puts it back as it was, still locked, leaving
    #: it to the caller as ``start`` returning None does
    templates: Callable[[int], StartTemplates] | None = None
    adopt: Callable[[ClaimedJob, JobRecord, ClaimStarted], bool] | None = None
    #: of the ``limit`` places, how many (the last ones) start jobs ahead of their drones (a
    #: colony's claim ahead): a job with a concurrency or rate limit never takes one of them, it
    #: stays in the queue (see :meth:`ClaimWalk.apply_limits`)
    ahead: int = 0


@dataclass(frozen=True, slots=True)
class StartTemplates:
    """How a claim statement writes the starts of :class:`QueueClaimStart`: the i-th job it starts
    (in claim order) gets execution id ``execution_ids[i]`` and an Executing state whose fields are
    the JSON text ``fields_before[i]`` + its entry's due time (ISO 8601, UTC) + ``fields_after[i]``."""

    execution_ids: Sequence[str]
    fields_before: Sequence[str]
    fields_after: Sequence[str]


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class ClaimStarted:
    """A job a claim statement started: which of the :class:`StartTemplates` it took (``index``),
    its new execution id and when its Executing state was elected (the database clock)."""

    index: int
    execution_id: str
    elected_at: datetime


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class ClaimedJob:
    job_id: int
    queue: str
    priority: int
    execution_id: str
    execute_after: datetime
    enqueued_at: datetime
    record: JobRecord | None = None


@dataclass(frozen=True, slots=True)
class QueueStat:
    queue: str
    priority: int
    ready: int
    delayed: int
    #: when the longest-waiting entry became due (None: none is due yet), on the database clock
    oldest_due: datetime | None = None
    #: the queue is paused (set by the job client, which reads the paused queues in the same snapshot)
    paused: bool = False


@dataclass(frozen=True, slots=True)
class QueuePause:
    """Pause ``queue`` (``paused_at`` is the database clock's now); pausing a paused queue keeps its
    first record."""

    queue: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class QueuePauseRecord:
    queue: str
    paused_at: datetime
    reason: str | None


@dataclass(frozen=True, slots=True)
class JobLockTakeover:
    """Take over up to ``limit`` locks whose heartbeat is older than ``lock_timeout`` (lock monitor)."""

    lock_timeout: timedelta
    new_holder: str
    limit: int = 100


@dataclass(frozen=True, slots=True)
class JobSearch:
    """Matching jobs in ``order`` (None: by id), at most ``limit``, skipping ``offset`` or continuing
    after the keyset ``after`` = (sort value, id) of the previous page's last job.

    With ``lock_requester`` only unlocked jobs are taken: they are locked for the requester
    (``lock_acquired`` set), and rows other transactions hold are skipped, not waited for.
    """

    condition: Condition | None = None
    order: Order | None = None
    limit: int = 100
    offset: int = 0
    after: tuple[Any, int] | None = None
    lock_requester: str | None = None


@dataclass(frozen=True, slots=True)
class JobQueues:
    """The distinct queue names of the jobs (starting with ``prefix``), sorted, at most ``limit``."""

    prefix: str | None = None
    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class ColonyUpsert:
    """Write a colony's current state; ``heartbeat`` becomes the database clock's now."""

    id: str
    name: str
    host: str
    pid: int
    status: str
    state: str  # JSON: swarms, drones, daemons, counters
    last_progress_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ColonyRecord:
    id: str
    name: str
    host: str
    pid: int
    status: str
    state: str
    started_at: datetime
    heartbeat: datetime
    last_progress_at: datetime | None


@dataclass(frozen=True, slots=True)
class DaemonLogRow:
    colony_id: str
    daemon: str
    level: int
    message: str
    created_at: datetime | None = None  # None: now (database clock)


@dataclass(frozen=True, slots=True)
class DaemonLogRecord:
    id: int
    colony_id: str
    daemon: str
    level: int
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DaemonLogList:
    colony_id: str
    daemon: str | None = None
    after_id: int = 0
    limit: int = 1000


# ----------------------------------------------------------------------------- recurring jobs


@dataclass(frozen=True, slots=True)
class RecurringRecord:
    """A recurring job: its definition (JSON), current state, the next occurrence it waits for,
    the background job of the occurrence running now, its statistics (JSON) and a version that
    changes with every write (compare-and-set)."""

    id: str
    definition: str
    state_name: str
    state_reason: str | None
    next_run: datetime | None
    job_id: int | None
    stats: str
    version: int
    created_at: datetime
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class RecurringWrite:
    """Insert a recurring job (``expected_version`` None: only if the id is free) or update it
    when its version is still ``expected_version`` (and, with ``expected_next_run``, its stored
    next run too). The version becomes ``expected_version + 1`` (1 on insert)."""

    id: str
    definition: str
    state_name: str
    state_reason: str | None
    next_run: datetime | None
    job_id: int | None
    stats: str
    expected_version: int | None = None
    expected_next_run: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecurringGet:
    id: str
    #: lock the row for the rest of the transaction (servers: FOR UPDATE; waits for other writers)
    for_update: bool = False


@dataclass(frozen=True, slots=True)
class RecurringList:
    """Recurring jobs by id after ``after_id``; ``due`` only those waiting in ``state`` whose next
    run has come (database clock), locked for the transaction, skipping rows others hold;
    ``running`` only those with an occurrence running (``job_id`` set)."""

    after_id: str = ""
    limit: int = 1000
    due: bool = False
    running: bool = False


@dataclass(frozen=True, slots=True)
class JobUniqueRecord:
    """The row of a unique key, locked for the rest of the transaction (see
    ``job_unique_claim``). ``job_id`` is None when the key was free: this transaction inserted it
    and must set it (:class:`JobUniqueSet`) or roll back. ``job_state`` is the current state name of
    the holding job (None when that job no longer exists)."""

    job_id: int | None
    states: tuple[str, ...]
    expires_at: datetime | None
    job_state: str | None


@dataclass(frozen=True, slots=True)
class JobUniqueSet:
    """Make ``job_id`` the holder of a unique key claimed in this transaction: it holds it while in
    one of ``states`` or until ``expires_at``."""

    unique_key: str
    job_id: int
    states: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobLimitSet:
    """The limits a new job is claimed under: at most ``limit_max`` jobs of ``limit_key`` Executing
    at once, at most ``rate_max`` starts of ``rate_key`` per ``rate_period_ms`` milliseconds (None:
    no such limit). Claims leave a job over either limit in the queue."""

    job_id: int
    limit_key: str | None
    limit_max: int | None
    rate_key: str | None
    rate_max: int | None
    rate_period_ms: int | None

    @classmethod
    def of(cls, job_id: int, limits: JobLimits) -> JobLimitSet:
        return cls(job_id, limits.limit_key, limits.limit_max, limits.rate_key, limits.rate_max, limits.rate_period_ms)


@dataclass(frozen=True, slots=True)
class OccurrenceInsert:
    """Record that the occurrence ``scheduled_at`` of ``recurring_id`` was enqueued (as ``job_id``).
    Answers False, without failing the transaction, when it was recorded before."""

    recurring_id: str
    scheduled_at: datetime
    job_id: int | None


@dataclass(frozen=True, slots=True)
class RecurringEventRow:
    """A line of a recurring job's history: ``kind`` "state" (``name`` = state name) or "log"
    (``name`` = level name); ``fields`` is JSON."""

    recurring_id: str
    kind: str
    name: str
    message: str | None = None
    fields: str = "{}"


@dataclass(frozen=True, slots=True)
class RecurringEventRecord:
    id: int
    recurring_id: str
    kind: str
    name: str
    message: str | None
    fields: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RecurringEventList:
    recurring_id: str
    kind: str | None = None
    #: newest first, before this id (0: from the newest)
    before_id: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class RecurringEventPrune:
    """Delete a recurring job's ``kind`` events beyond the newest ``keep`` and/or older than
    ``older_than`` (database clock)."""

    recurring_id: str
    kind: str
    keep: int | None = None
    older_than: timedelta | None = None


# ----------------------------------------------------------------------------- maintenance


@dataclass(frozen=True, slots=True)
class JobPurge:
    """Permanently delete up to ``limit`` unlocked jobs whose current state is one of ``states``
    and was elected more than ``older_than`` ago (database clock), with everything they own."""

    states: tuple[str, ...]
    older_than: timedelta
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class LogPurge:
    """Delete up to ``limit`` of the oldest rows of ``table`` ("job_log", "daemon_log" or
    "recurring_occurrence") created more than ``older_than`` ago (database clock)."""

    table: str
    older_than: timedelta
    limit: int = 5000


@dataclass(frozen=True, slots=True)
class LeaseAcquire:
    """Take or renew the named lease for ``holder`` for ``ttl`` (database clock) unless another
    holder's lease is still running; ``release`` gives it up instead."""

    name: str
    holder: str
    ttl: timedelta
    release: bool = False
