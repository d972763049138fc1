"""The storage interface: the only thing the engine knows about databases.

A backend implements :class:`Storage` (one environment's tables in one database) and
:class:`Transaction` (the operations). Operations are named ``noun_verb``, take one parameter
object (the records of :mod:`hivemind_jobs.storage.params`, re-exported here) and are grouped by
noun into :class:`JobOperations`, :class:`QueueOperations`, :class:`ColonyOperations`,
:class:`RecurringOperations` and :class:`MaintenanceOperations`, so this module reads like a table
of contents of what HiveMind asks of a database. Dialect differences are declared in
:class:`Capabilities`, never detected with ``isinstance``.

Semantics every backend must keep (``testing/conformance`` checks them):

- Timestamps are timezone-aware UTC ``datetime`` values at the boundary.
- ``now`` inside an operation is the database clock; lock freshness and due times are compared
  with it inside SQL, and a queue entry's relative ``delay`` is added to it (never to a client's clock).
- Worker writes are fenced: they only apply while ``execution_id`` and the lock holder still match.
- Nothing written in a transaction is visible to other connections before ``commit``.
- One environment's operations never read or change another environment's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from hivemind_jobs.storage import params
from hivemind_jobs.storage.params import *  # noqa: F403 - every record is re-exported (see __all__)
from hivemind_jobs.storage.params import (
    ClaimedJob,
    ColonyRecord,
    ColonyUpsert,
    ContinuationLink,
    ContinuationMark,
    DaemonLogList,
    DaemonLogRecord,
    DaemonLogRow,
    JobActionInsert,
    JobActionList,
    JobActionRecord,
    JobDataGet,
    JobDataItem,
    JobDataList,
    JobDataSet,
    JobGet,
    JobHeartbeat,
    JobInsert,
    JobInserted,
    JobLimitSet,
    JobLockRelease,
    JobLockReleased,
    JobLockTakeover,
    JobLogList,
    JobLogRecord,
    JobLogRow,
    JobPurge,
    JobQueues,
    JobRecord,
    JobSearch,
    JobStateHistogram,
    JobStateSince,
    JobUniqueRecord,
    JobUniqueSet,
    JobUpdate,
    JobUpdated,
    LeaseAcquire,
    LogPurge,
    OccurrenceInsert,
    QueueClaim,
    QueueClaimStart,
    QueuePause,
    QueuePauseRecord,
    QueueStat,
    RecurringEventList,
    RecurringEventPrune,
    RecurringEventRecord,
    RecurringEventRow,
    RecurringGet,
    RecurringList,
    RecurringRecord,
    RecurringWrite,
)

if TYPE_CHECKING:
    from hivemind_jobs.query.conditions import Condition

__all__ = [
    "Capabilities",
    "ColonyOperations",
    "JobOperations",
    "LockRenewer",
    "MaintenanceOperations",
    "Operations",
    "QueueOperations",
    "RecurringOperations",
    "SchemaStatus",
    "Storage",
    "StorageInfo",
    "Transaction",
]
__all__ += params.__all__


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
    #: ``job_insert`` in a transaction of its own takes :class:`PendingInserts` and builds them
    #: part by part while the parts before are written (PostgreSQL, MySQL/MariaDB)
    inserts_in_parts: bool = False


# ----------------------------------------------------------------------------- operations by noun


class JobOperations(Protocol):
    """Jobs: their rows, states, properties, locks, data, logs, actions and continuations."""

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

    async def job_lock_release(self, params: JobLockRelease) -> JobLockReleased: ...
    async def job_heartbeat(self, params: JobHeartbeat) -> frozenset[int]: ...
    async def job_state_counts(self) -> dict[str, int]: ...
    async def job_search(self, params: JobSearch) -> list[JobRecord]: ...
    async def job_count(self, params: Condition | None) -> int: ...
    async def job_queues(self, params: JobQueues) -> list[str]: ...
    async def job_state_histogram(self, params: JobStateHistogram) -> dict[int, int]: ...
    async def job_state_by_queue(self, params: JobStateSince) -> dict[str, int]: ...
    async def job_state_counts_capped(self, params: int) -> dict[str, int]: ...
    async def job_data_get(self, params: JobDataGet) -> str | None: ...
    async def job_data_list(self, params: JobDataList) -> list[JobDataItem]: ...
    async def job_data_set(self, params: JobDataSet) -> bool: ...
    async def job_log_insert(self, params: Sequence[JobLogRow]) -> int: ...
    async def job_log_list(self, params: JobLogList) -> list[JobLogRecord]: ...
    async def job_action_insert(self, params: JobActionInsert) -> int: ...
    async def job_action_list(self, params: JobActionList) -> list[JobActionRecord]: ...
    async def job_action_delete(self, params: Sequence[int]) -> int: ...
    async def continuation_list(self, params: int) -> list[ContinuationLink]: ...
    async def continuation_mark(self, params: Sequence[ContinuationMark]) -> None: ...
    async def job_unique_claim(self, params: str) -> JobUniqueRecord:
        """Lock the row of the unique key ``params`` for the rest of the transaction, inserting it
        when missing (then its ``job_id`` is None); race-free across processes."""
        ...

    async def job_unique_set(self, params: JobUniqueSet) -> bool: ...
    async def job_limit_set(self, params: Sequence[JobLimitSet]) -> int:
        """Set the concurrency and rate limits of jobs created in this transaction (before it
        commits, no claim sees them); answers how many jobs were found."""
        ...


class QueueOperations(Protocol):
    """The queue: claiming due jobs, and what waits in it."""

    async def queue_claim(self, params: QueueClaim) -> list[ClaimedJob]: ...
    async def queue_claim_start(self, params: QueueClaimStart) -> list[ClaimedJob]:
        """Claim and move the claimed jobs to the state ``params.start`` gives (a worker's claim
        when no lifecycle handler has to see the transition)."""
        ...

    async def queue_stats(self) -> list[QueueStat]: ...
    async def queue_pause(self, params: QueuePause) -> bool:
        """Pause a queue: claims leave it out until it is resumed; False when it was paused already."""
        ...

    async def queue_resume(self, params: str) -> bool:
        """Resume the queue named ``params``; False when it was not paused."""
        ...

    async def queue_pause_list(self) -> list[QueuePauseRecord]:
        """The paused queues, by name."""
        ...


class ColonyOperations(Protocol):
    """Colonies (the running worker processes) and their daemons' logs."""

    async def colony_upsert(self, params: ColonyUpsert) -> ColonyRecord: ...
    async def colony_get(self, params: str) -> ColonyRecord | None: ...
    async def colony_list(self) -> list[ColonyRecord]: ...
    async def colony_delete(self, params: Sequence[str]) -> int: ...
    async def colony_delete_stale(self, params: timedelta) -> list[str]:
        """Delete colonies without a heartbeat for ``params`` (their daemon logs go with them)."""
        ...

    async def daemon_log_insert(self, params: Sequence[DaemonLogRow]) -> int: ...
    async def daemon_log_list(self, params: DaemonLogList) -> list[DaemonLogRecord]: ...


class RecurringOperations(Protocol):
    """Recurring jobs, the occurrences they enqueued and their history."""

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


class MaintenanceOperations(Protocol):
    """What the maintenance daemons and the lock monitor need: the database clock, leases, lock
    takeover and purges."""

    async def job_lock_takeover(self, params: JobLockTakeover) -> list[int]: ...
    async def job_purge(self, params: JobPurge) -> int: ...
    async def log_purge(self, params: LogPurge) -> int: ...
    async def lease_acquire(self, params: LeaseAcquire) -> bool: ...
    async def clock_now(self) -> datetime: ...


class Operations(
    JobOperations, QueueOperations, ColonyOperations, RecurringOperations, MaintenanceOperations, Protocol
):
    """Every operation a backend implements (what :mod:`hivemind_jobs.storage.binding` binds)."""


# ----------------------------------------------------------------------------- interfaces


class Transaction(Operations, Protocol):
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
        at once; None means the backend has no such signal (workers then poll, listen, or refresh it
        with :meth:`probe_changes`).
        """
        ...

    async def probe_changes(self) -> bool:
        """Refresh :meth:`change_marker` from the database with one small query, for backends that
        neither notify nor have a local marker (MySQL: the highest job id); False when this backend
        has no such probe. A failed probe leaves the marker as it was (the poll remains)."""
        ...

    def subscribe_changes(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``callback`` (on the running loop) whenever another connection committed work to
        claim; returns a function that unsubscribes, or None when the backend has no such push
        (workers then use :meth:`change_marker` or poll)."""
        ...

    def subscribe_finished(self, callback: Callable[[frozenset[int] | None], None]) -> Callable[[], None] | None:
        """Call ``callback(job_ids)`` (on the running loop) after another connection committed jobs
        reaching a final state (None: any job may have); returns a function that unsubscribes, or
        None when the backend has no such push (waiters for results then poll)."""
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
