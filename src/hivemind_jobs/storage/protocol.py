"""The storage interface: the only thing the engine knows about databases.

A backend implements :class:`Storage` (one environment's tables in one database) and
:class:`Transaction` (the operations). Operations are named ``noun_verb`` and take one parameter
object, so this module reads like a table of contents of what HiveMind asks of a database.
Dialect differences are declared in :class:`Capabilities`, never detected with ``isinstance``.

Semantics every backend must keep (``testing/conformance`` checks them):

- Timestamps are timezone-aware UTC ``datetime`` values at the boundary.
- ``now`` inside an operation is the database clock; lock freshness and due times are compared
  with it inside SQL, and a queue entry's relative ``delay`` is added to it (never to a client's clock).
- Worker writes are fenced: they only apply while ``execution_id`` and the lock holder still match.
- Nothing written in a transaction is visible to other connections before ``commit``.
- One environment's operations never read or change another environment's rows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from hivemind_jobs.core.job import PropertyType, PropertyValue

if TYPE_CHECKING:
    from hivemind_jobs.query.conditions import Condition
    from hivemind_jobs.query.order import Order

__all__ = [
    "Capabilities",
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
    "JobDataSet",
    "JobGet",
    "JobHeartbeat",
    "JobInsert",
    "JobInserted",
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
    "JobUpdate",
    "JobUpdated",
    "LeaseAcquire",
    "LockRenewer",
    "LogPurge",
    "OccurrenceInsert",
    "PropertyRow",
    "QueueClaim",
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
    "SchemaStatus",
    "StateRow",
    "Storage",
    "Transaction",
    "UpdateOutcome",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do; the engine picks strategies from these flags."""

    dialect: str
    #: one writer at a time per database file (SQLite): transactions are serialized in-process
    single_writer: bool
    skip_locked: bool
    listen_notify: bool
    returning_on_update: bool
    transactional_ddl: bool


# ----------------------------------------------------------------------------- rows and records


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class StateRow:
    sequence: int
    name: str
    elected_at: datetime
    reason: str | None
    fields: str  # JSON object of the state's persisted fields


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
    states: tuple[StateRow, ...]
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


@dataclass(slots=True)  # hot path: not frozen (frozen init is slow); never mutated after creation
class JobInsert:
    queue: str
    priority: int
    execution_id: str
    invocation: str
    middleware: str
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


# ----------------------------------------------------------------------------- interfaces


class Transaction(Protocol):
    """The operations, all inside one database transaction (or one read snapshot per call)."""

    @property
    def finished(self) -> bool:
        """Committed or rolled back: no more operations."""
        ...

    def commit_after_next(self) -> None:
        """Commit together with the next operation when that operation needs no follow-up.

        A round-trip saving hint for a caller whose next operation is its last: the transaction is
        then finished (see :attr:`finished`) unless the result asks for more work (a saved job with
        children to release or fired continuations, or an update that did not save). If the
        operation fails, the transaction is rolled back. A backend may ignore the hint and commit
        at the end as usual.
        """
        ...

    async def job_insert(self, params: Sequence[JobInsert]) -> list[JobInserted]: ...
    async def job_get(self, params: JobGet) -> JobRecord | None: ...
    async def job_get_many(self, params: Sequence[int]) -> list[JobRecord]:
        """The jobs with these ids that exist, in the order asked (no locking)."""
        ...

    async def job_update(self, params: JobUpdate) -> JobUpdated: ...
    async def job_update_many(self, params: Sequence[JobUpdate]) -> list[JobUpdated]:
        """Several fenced saves in one round trip; each has its own outcome (one failing fence
        does not undo the others)."""
        ...

    async def job_lock_takeover(self, params: JobLockTakeover) -> list[int]: ...
    async def job_lock_release(self, params: JobLockRelease) -> JobLockReleased: ...
    async def job_heartbeat(self, params: JobHeartbeat) -> frozenset[int]: ...
    async def job_state_counts(self) -> dict[str, int]: ...
    async def job_search(self, params: JobSearch) -> list[JobRecord]: ...
    async def job_count(self, params: Condition | None) -> int: ...
    async def job_queues(self, params: JobQueues) -> list[str]: ...
    async def job_data_get(self, params: JobDataGet) -> str | None: ...
    async def job_data_set(self, params: JobDataSet) -> bool: ...
    async def job_log_insert(self, params: Sequence[JobLogRow]) -> int: ...
    async def job_log_list(self, params: JobLogList) -> list[JobLogRecord]: ...
    async def job_action_insert(self, params: JobActionInsert) -> int: ...
    async def job_action_list(self, params: JobActionList) -> list[JobActionRecord]: ...
    async def job_action_delete(self, params: Sequence[int]) -> int: ...
    async def continuation_list(self, params: int) -> list[ContinuationLink]: ...
    async def continuation_mark(self, params: Sequence[ContinuationMark]) -> None: ...
    async def queue_claim(self, params: QueueClaim) -> list[ClaimedJob]: ...
    async def queue_stats(self) -> list[QueueStat]: ...
    async def colony_upsert(self, params: ColonyUpsert) -> ColonyRecord: ...
    async def colony_get(self, params: str) -> ColonyRecord | None: ...
    async def colony_list(self) -> list[ColonyRecord]: ...
    async def colony_delete(self, params: Sequence[str]) -> int: ...
    async def colony_delete_stale(self, params: timedelta) -> list[str]:
        """Delete colonies without a heartbeat for ``params`` (their daemon logs go with them)."""
        ...

    async def daemon_log_insert(self, params: Sequence[DaemonLogRow]) -> int: ...
    async def daemon_log_list(self, params: DaemonLogList) -> list[DaemonLogRecord]: ...
    async def recurring_get(self, params: RecurringGet) -> RecurringRecord | None: ...
    async def recurring_list(self, params: RecurringList) -> list[RecurringRecord]: ...
    async def recurring_write(self, params: RecurringWrite) -> bool:
        """Insert or compare-and-set update (see :class:`RecurringWrite`); False when the id was
        taken (insert) or the row changed or vanished meanwhile (update)."""
        ...

    async def recurring_delete(self, params: str) -> bool:
        """Delete a recurring job and its history (its occurrence keys stay until pruned)."""
        ...

    async def occurrence_insert(self, params: OccurrenceInsert) -> bool: ...
    async def recurring_event_insert(self, params: Sequence[RecurringEventRow]) -> int: ...
    async def recurring_event_list(self, params: RecurringEventList) -> list[RecurringEventRecord]: ...
    async def recurring_event_prune(self, params: RecurringEventPrune) -> int: ...
    async def job_purge(self, params: JobPurge) -> int: ...
    async def log_purge(self, params: LogPurge) -> int: ...
    async def lease_acquire(self, params: LeaseAcquire) -> bool: ...
    async def clock_now(self) -> datetime: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


@dataclass(frozen=True)
class SchemaStatus:
    """Where an environment's tables stand: ``current`` of ``latest`` versions, migrations still
    ``pending`` and (after an upgrade) the ones just ``applied``, named ``NNNN_description``."""

    current: int
    latest: int
    pending: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageInfo:
    """What to show about a storage in logs and pages (passwords already removed)."""

    url: str
    environment: str
    table_prefix: str
    schema_version: int = 0
    extras: dict[str, str] = field(default_factory=dict)


class LockRenewer(Protocol):
    """A blocking connection of its own that renews job locks, for a colony's heartbeat thread.

    It shares nothing with the event loop or the storage's pool, so a job that blocks the loop, or a
    pool whose connections hang, cannot keep locks from being renewed. Every call returns or raises
    (:class:`~hivemind_jobs.errors.StorageError`) within ``deadline_seconds``, even when the database
    or the network stops answering; after a failure the next call uses a new connection. One thread
    uses a renewer at a time.
    """

    def renew(self, params: JobHeartbeat, deadline_seconds: float) -> frozenset[int]:
        """``Transaction.job_heartbeat`` in a transaction of its own: the ids whose lock was renewed."""
        ...

    def clock_now(self, deadline_seconds: float = 5.0) -> datetime:
        """The database clock."""
        ...

    def close(self) -> None: ...


class Storage(Protocol):
    """One environment's tables in one database."""

    capabilities: Capabilities

    @property
    def info(self) -> StorageInfo: ...

    async def open(self) -> None:
        """Connect and make sure the schema is current (or fail with SchemaError)."""
        ...

    async def close(self) -> None: ...

    async def schema_status(self) -> SchemaStatus:
        """The schema version of this environment's tables (works on an unopened storage)."""
        ...

    async def schema_upgrade(self) -> SchemaStatus:
        """Apply the pending migrations under a database-wide lock (works on an unopened storage)."""
        ...

    def schema_sql(self, since: int = 0) -> list[str]:
        """The DDL of the migrations after version ``since``, for a DBA to review or run."""
        ...

    def change_marker(self) -> object | None:
        """A cheap value (no round trip) that changes when another connection may have committed.

        Idle workers compare it every few milliseconds to start jobs enqueued by other processes
        at once; None means the backend has no such signal (workers then poll, or listen).
        """
        ...

    def subscribe_changes(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``callback`` (on the running loop) whenever another connection committed work to
        claim; returns a function that unsubscribes, or None when the backend has no such push
        (workers then use :meth:`change_marker` or poll)."""
        ...

    def lock_renewer(self) -> LockRenewer:
        """A new :class:`LockRenewer` (it connects at its first call; close it when done)."""
        ...

    def transaction(
        self, *, readonly: bool = False, connection: object | None = None
    ) -> AbstractAsyncContextManager[Transaction]:
        """A transaction: committed on clean exit unless already finished, rolled back on error.

        Nothing happens in the database until the first operation, so an unused transaction
        costs nothing. With ``readonly`` every operation reads a consistent snapshot.

        With ``connection`` (the application's own driver connection to the same database, inside
        a transaction it opened) the operations run on that connection and are never committed or
        rolled back here: they commit or roll back with the application's own work.
        """
        ...
