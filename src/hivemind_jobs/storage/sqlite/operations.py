"""The storage operations for SQLite, as plain functions run on a connection's own thread.

Each function is one unit of work: it may run several statements, and runs them without a thread
hop in between. Times are integer microseconds; ``now`` is read once per operation in the thread
that owns the database connection (the database clock for SQLite).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from hivemind_jobs.core.clock import from_microseconds, to_microseconds
from hivemind_jobs.errors import StorageError
from hivemind_jobs.query.conditions import Condition
from hivemind_jobs.storage.compiler import Tables, compile_count, compile_job_search, compile_lock, compile_queues
from hivemind_jobs.storage.dialect import SQLITE
from hivemind_jobs.storage.protocol import (
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
    JobDataSet,
    JobGet,
    JobHeartbeat,
    JobInsert,
    JobInserted,
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
    JobUpdate,
    JobUpdated,
    LeaseAcquire,
    LogPurge,
    OccurrenceInsert,
    PropertyRow,
    QueueClaim,
    QueuePointer,
    QueueStat,
    RecurringEventList,
    RecurringEventPrune,
    RecurringEventRecord,
    RecurringEventRow,
    RecurringGet,
    RecurringList,
    RecurringRecord,
    RecurringWrite,
    StateRow,
    UpdateOutcome,
)
from hivemind_jobs.storage.rows import (
    event_list_params,
    event_params,
    fence_outcome,
    occurrence_params,
    property_from_row,
    property_params,
    recurring_write_params,
    state_params,
)
from hivemind_jobs.storage.sql import SQL, QueryBook

Queries = Mapping[str, SQL]


def now_us() -> int:
    return time.time_ns() // 1000


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _opt_dt(value: int | None) -> Any:
    return from_microseconds(value) if value is not None else None


# ----------------------------------------------------------------------------- conversions


def _state_params(job_id: int, state: StateRow) -> dict[str, Any]:
    return state_params(job_id, state, to_microseconds)


def _property_params(job_id: int, row: PropertyRow) -> dict[str, Any]:
    return property_params(job_id, row, to_microseconds)


def _property_from_row(row: Sequence[Any]) -> PropertyRow:
    return property_from_row(row, from_microseconds)


def _due(pointer: QueuePointer, now: int, kept: int | None) -> int:
    """When a queue entry is due; ``now`` is the database clock this operation read, so a relative
    delay is measured on the database's clock and the creating process's clock plays no part."""
    if kept is not None:
        return kept
    if pointer.execute_after is not None:
        return to_microseconds(pointer.execute_after)
    if pointer.delay is not None:
        return now + _us(pointer.delay)
    return now


def _queue_params(job_id: int, pointer: QueuePointer, now: int, kept: int | None = None) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "queue": pointer.queue,
        "priority": pointer.priority,
        "execution_id": pointer.execution_id,
        "execute_after": _due(pointer, now, kept),
        "now": now,
    }


def _kept_due(con: sqlite3.Connection, q: Queries, pointers: Sequence[tuple[int, QueuePointer]]) -> dict[int, int]:
    """The due times of existing entries that ``keep_due`` pointers keep (one read, only when asked)."""
    ids = sorted(job_id for job_id, pointer in pointers if pointer.keep_due)
    if not ids:
        return {}
    return {int(job_id): int(due) for job_id, due in con.execute(q["queue_due_many"], {"job_ids": json.dumps(ids)})}


def _links(rows: list[Any]) -> tuple[ContinuationLink, ...]:
    return tuple(ContinuationLink(parent_id, child_id, fired_state) for parent_id, child_id, fired_state in rows)


# ----------------------------------------------------------------------------- jobs


def job_insert(con: sqlite3.Connection, q: Queries, params: Sequence[JobInsert]) -> list[JobInserted]:
    if not params:
        return []
    now = now_us()
    con.executemany(
        q["job_insert"],
        [
            {
                "queue": job.queue,
                "priority": job.priority,
                "execution_id": job.execution_id,
                "state_name": job.states[-1].name,
                "state_sequence": job.states[-1].sequence,
                "state_elected_at": to_microseconds(job.states[-1].elected_at),
                "invocation": job.invocation,
                "middleware": job.middleware,
                "lock_owner": job.lock_owner,
                "now": now,
            }
            for job in params
        ],
    )
    # The transaction holds the only write lock and ids are AUTOINCREMENT: the rows just inserted
    # got consecutive ids ending at the last one. Checked on the first row, to be sure.
    last = int(con.execute(q["job_last_id"]).fetchone()[0])
    ids = range(last - len(params) + 1, last + 1)
    first = con.execute(q["job_execution_id"], {"job_id": ids[0]}).fetchone()
    if first is None or first[0] != params[0].execution_id:
        raise StorageError("SQLite did not assign consecutive ids to a batch insert; nothing was written")
    pairs = list(zip(ids, params, strict=True))
    con.executemany(
        q["job_state_insert"], [_state_params(job_id, state) for job_id, job in pairs for state in job.states]
    )
    properties = [_property_params(job_id, prop) for job_id, job in pairs for prop in job.properties]
    if properties:
        con.executemany(q["job_property_upsert"], properties)
    pointers = [_queue_params(job_id, job.enqueue, now) for job_id, job in pairs if job.enqueue is not None]
    if pointers:
        con.executemany(q["queue_upsert"], pointers)
    links = [
        {"parent_id": job.awaiting_parent, "child_id": job_id, "now": now}
        for job_id, job in pairs
        if job.awaiting_parent is not None
    ]
    if links:
        con.executemany(q["continuation_insert"], links)
    created = from_microseconds(now)
    return [JobInserted(job_id, created) for job_id in ids]


def _records(con: sqlite3.Connection, q: Queries, ids: Sequence[int], acquired: set[int]) -> dict[int, JobRecord]:
    """Full records of the jobs ``ids`` (three statements whatever the count)."""
    key = {"job_ids": json.dumps(list(ids))}
    states: dict[int, list[StateRow]] = {}
    for job_id, sequence, name, elected_at, reason, fields in con.execute(q["job_state_select_many"], key):
        states.setdefault(job_id, []).append(StateRow(sequence, name, from_microseconds(elected_at), reason, fields))
    properties: dict[int, list[PropertyRow]] = {}
    for row in con.execute(q["job_property_select_many"], key):
        properties.setdefault(row[0], []).append(_property_from_row(row[1:]))
    records: dict[int, JobRecord] = {}
    for row in con.execute(q["job_select_many"], key):
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
            created_at=from_microseconds(created_at),
            modified_at=from_microseconds(modified_at),
            locked_by=locked_by,
            locked_at=_opt_dt(locked_at),
            lock_heartbeat=_opt_dt(heartbeat),
            states=tuple(states.get(job_id, ())),
            properties=tuple(properties.get(job_id, ())),
            lock_acquired=job_id in acquired,
        )
    return records


def job_get(con: sqlite3.Connection, q: Queries, params: JobGet) -> JobRecord | None:
    acquired: set[int] = set()
    if params.lock_requester is not None:
        cursor = con.execute(
            q["job_lock"], {"job_id": params.job_id, "requester": params.lock_requester, "now": now_us()}
        )
        if cursor.rowcount == 1:
            acquired.add(params.job_id)
    return _records(con, q, [params.job_id], acquired).get(params.job_id)


def job_get_many(con: sqlite3.Connection, q: Queries, params: Sequence[int]) -> list[JobRecord]:
    records = _records(con, q, params, set())
    return [records[job_id] for job_id in params if job_id in records]


def _update_params(params: JobUpdate, now: int) -> dict[str, Any]:
    current = params.new_states[-1] if params.new_states else None
    return {
        "job_id": params.job_id,
        "queue": params.queue,
        "priority": params.priority,
        "execution_id": params.execution_id,
        "state_name": current.name if current else None,
        "state_sequence": current.sequence if current else None,
        "state_elected_at": to_microseconds(current.elected_at) if current else None,
        "release_lock": 1 if params.release_lock else 0,
        "expected_execution_id": params.expected_execution_id,
        "holder": params.holder,
        "lock_timeout_us": _us(params.lock_timeout),
        "now": now,
    }


def job_update(con: sqlite3.Connection, q: Queries, params: JobUpdate) -> JobUpdated:
    return _update_batch(con, q, [params])[0]


def job_update_many(con: sqlite3.Connection, q: Queries, params: Sequence[JobUpdate]) -> list[JobUpdated]:
    """The saves of a batch with a handful of statements whatever its size.

    The fences are checked with one read first; inside the write transaction nothing can change
    between that read and the writes, so every update that passed its fence applies.
    """
    ids = [update.job_id for update in params]
    if len(set(ids)) != len(ids):  # the same job twice: each save sees the one before it
        return [_update_batch(con, q, [update])[0] for update in params]
    return _update_batch(con, q, params)


def _update_batch(con: sqlite3.Connection, q: Queries, params: Sequence[JobUpdate]) -> list[JobUpdated]:
    """Fenced saves of distinct jobs (the single save is a batch of one)."""
    if not params:
        return []
    ids = [update.job_id for update in params]
    now = now_us()
    rows = {row[0]: row[1:] for row in con.execute(q["job_fence_check_many"], {"job_ids": json.dumps(ids)})}
    outcomes = [fence_outcome(rows.get(u.job_id), u, now - _us(u.lock_timeout)) for u in params]
    saved = [update for update, outcome in zip(params, outcomes, strict=True) if outcome is UpdateOutcome.SAVED]
    con.executemany(q["job_update"], [_update_params(update, now) for update in saved])
    states = [_state_params(u.job_id, state) for u in saved for state in u.new_states]
    if states:
        con.executemany(q["job_state_insert"], states)
    properties = [_property_params(u.job_id, prop) for u in saved for prop in u.set_properties]
    if properties:
        con.executemany(q["job_property_upsert"], properties)
    removed = [{"job_id": u.job_id, "name": name} for u in saved for name in u.removed_properties]
    if removed:
        con.executemany(q["job_property_delete"], removed)
    enqueue = [(u.job_id, p) for u in saved if (p := u.enqueue) is not None]
    kept = _kept_due(con, q, enqueue)
    pointers = [_queue_params(job_id, p, now, kept.get(job_id)) for job_id, p in enqueue]
    if pointers:
        con.executemany(q["queue_upsert"], pointers)
    dequeued = [{"job_id": u.job_id} for u in saved if u.enqueue is None and u.dequeue]
    if dequeued:
        con.executemany(q["queue_delete"], dequeued)
    links = [
        {"parent_id": u.awaiting_parent, "child_id": u.job_id, "now": now}
        for u in saved
        if u.awaiting_parent is not None
    ]
    if links:
        con.executemany(q["continuation_insert"], links)
    children: dict[int, list[int]] = {}
    changed = [u.job_id for u in saved if u.new_states]
    if changed:
        for link in _links(con.execute(q["continuation_children_many"], {"job_ids": json.dumps(changed)}).fetchall()):
            children.setdefault(link.parent_id, []).append(link.child_id)
    fired: dict[int, list[ContinuationLink]] = {}
    released = [u.job_id for u in saved if u.release_lock]
    if released:
        for link in _links(
            con.execute(q["continuation_fired_for_children"], {"job_ids": json.dumps(released)}).fetchall()
        ):
            fired.setdefault(link.child_id, []).append(link)
    modified = from_microseconds(now)
    results: list[JobUpdated] = []
    for update, outcome in zip(params, outcomes, strict=True):
        if outcome is not UpdateOutcome.SAVED:
            results.append(JobUpdated(outcome))
            continue
        results.append(
            JobUpdated(
                UpdateOutcome.SAVED,
                modified_at=modified,
                lock_heartbeat=None if update.release_lock else modified,
                children=tuple(children.get(update.job_id, ())),
                fired=tuple(fired.get(update.job_id, ())),
            )
        )
    return results


def job_lock_takeover(con: sqlite3.Connection, q: Queries, params: JobLockTakeover) -> list[int]:
    now = now_us()
    rows = con.execute(
        q["job_lock_takeover"],
        {
            "new_holder": params.new_holder,
            "now": now,
            "cutoff": now - _us(params.lock_timeout),
            "limit": params.limit,
        },
    ).fetchall()
    return sorted(int(row[0]) for row in rows)


def job_lock_release(con: sqlite3.Connection, q: Queries, params: JobLockRelease) -> JobLockReleased:
    cursor = con.execute(q["job_lock_release"], {"job_id": params.job_id, "holder": params.holder})
    if cursor.rowcount != 1:
        return JobLockReleased(False)
    fired = _links(con.execute(q["continuation_fired_for_child"], {"child_id": params.job_id}).fetchall())
    return JobLockReleased(True, fired)


def job_heartbeat(con: sqlite3.Connection, q: Queries, params: JobHeartbeat) -> frozenset[int]:
    now = now_us()
    timeout = _us(params.lock_timeout)
    alive = set()
    for job_id in params.job_ids:
        row = con.execute(
            q["job_heartbeat"], {"job_id": job_id, "holder": params.holder, "now": now, "lock_timeout_us": timeout}
        ).fetchone()
        if row is not None:
            alive.add(int(row[0]))
    return frozenset(alive)


def job_state_counts(con: sqlite3.Connection, q: Queries) -> dict[str, int]:
    return {name: int(count) for name, count in con.execute(q["job_state_counts"])}


def _tables(q: Queries) -> Tables:
    assert isinstance(q, QueryBook)
    return q.table


def job_search(con: sqlite3.Connection, q: Queries, params: JobSearch) -> list[JobRecord]:
    """Matching jobs in order; with a lock requester, the unlocked ones among them get locked
    (the write transaction holds the database, so nobody else can take them meanwhile)."""
    tables = _tables(q)
    compiled = compile_job_search(SQLITE, tables, params)
    ids = [row[0] for row in con.execute(compiled.sql, compiled.params)]
    acquired: set[int] = set()
    if ids and params.lock_requester is not None:
        lock = compile_lock(SQLITE, tables, ids, params.lock_requester, now_us())
        con.execute(lock.sql, lock.params)
        acquired = set(ids)
    records = _records(con, q, ids, acquired)
    return [records[job_id] for job_id in ids if job_id in records]


def job_count(con: sqlite3.Connection, q: Queries, params: Condition | None) -> int:
    compiled = compile_count(SQLITE, _tables(q), params)
    return int(con.execute(compiled.sql, compiled.params).fetchone()[0])


def job_queues(con: sqlite3.Connection, q: Queries, params: JobQueues) -> list[str]:
    compiled = compile_queues(SQLITE, _tables(q), params.prefix, params.limit)
    return [row[0] for row in con.execute(compiled.sql, compiled.params)]


# ----------------------------------------------------------------------------- data, logs, actions


def job_data_get(con: sqlite3.Connection, q: Queries, params: JobDataGet) -> str | None:
    row = con.execute(q["job_data_select"], {"job_id": params.job_id, "name": params.name}).fetchone()
    return None if row is None else str(row[0])


def job_data_set(con: sqlite3.Connection, q: Queries, params: JobDataSet) -> bool:
    cursor = con.execute(
        q["job_data_upsert"], {"job_id": params.job_id, "name": params.name, "value": params.value, "now": now_us()}
    )
    return cursor.rowcount == 1


def job_log_insert(con: sqlite3.Connection, q: Queries, params: Sequence[JobLogRow]) -> int:
    now = now_us()
    before = con.total_changes
    con.executemany(
        q["job_log_insert"],
        [
            {
                "job_id": row.job_id,
                "level": row.level,
                "logger": row.logger,
                "message": row.message,
                "exception_type": row.exception_type,
                "exception_message": row.exception_message,
                "traceback": row.traceback,
                "created_at": to_microseconds(row.created_at) if row.created_at is not None else None,
                "now": now,
            }
            for row in params
        ],
    )
    return con.total_changes - before


def job_log_list(con: sqlite3.Connection, q: Queries, params: JobLogList) -> list[JobLogRecord]:
    rows = con.execute(
        q["job_log_select"],
        {"job_id": params.job_id, "min_level": params.min_level, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        JobLogRecord(log_id, job_id, level, message, logger, exc_type, exc_message, trace, from_microseconds(created))
        for log_id, job_id, level, message, logger, exc_type, exc_message, trace, created in rows
    ]


def job_action_insert(con: sqlite3.Connection, q: Queries, params: JobActionInsert) -> int:
    row = con.execute(
        q["job_action_insert"],
        {
            "job_id": params.job_id,
            "execution_id": params.execution_id,
            "kind": params.kind,
            "payload": params.payload,
            "requested_by": params.requested_by,
            "now": now_us(),
        },
    ).fetchone()
    return int(row[0])


def job_action_list(con: sqlite3.Connection, q: Queries, params: JobActionList) -> list[JobActionRecord]:
    rows = con.execute(q["job_action_select"], {"job_ids": json.dumps(list(params.job_ids)), "limit": params.limit})
    return [
        JobActionRecord(action_id, job_id, execution_id, kind, payload, requested_by, from_microseconds(created))
        for action_id, job_id, execution_id, kind, payload, requested_by, created in rows
    ]


def job_action_delete(con: sqlite3.Connection, q: Queries, params: Sequence[int]) -> int:
    before = con.total_changes
    con.executemany(q["job_action_delete"], [{"id": action_id} for action_id in params])
    return con.total_changes - before


def continuation_list(con: sqlite3.Connection, q: Queries, job_id: int) -> list[ContinuationLink]:
    return list(_links(con.execute(q["continuation_list"], {"job_id": job_id}).fetchall()))


def continuation_mark(con: sqlite3.Connection, q: Queries, params: Sequence[ContinuationMark]) -> None:
    for mark in params:
        key = {"parent_id": mark.parent_id, "child_id": mark.child_id}
        if mark.delete:
            con.execute(q["continuation_delete"], key)
        else:
            con.execute(q["continuation_fire"], {**key, "fired_state": mark.fired_state})


# ----------------------------------------------------------------------------- queue


def queue_claim(con: sqlite3.Connection, q: Queries, params: QueueClaim) -> list[ClaimedJob]:
    now = now_us()
    claimed: list[ClaimedJob] = []
    taken: list[int] = []
    seen: set[str] = set()
    for group in params.groups:
        remaining = params.limit - len(claimed)
        if remaining <= 0:
            break
        candidates: list[tuple[Any, ...]] = []
        for queue in group:
            if queue in seen:
                continue
            seen.add(queue)
            candidates.extend(con.execute(q["queue_peek"], {"queue": queue, "now": now, "limit": remaining}).fetchall())
        candidates.sort(key=lambda row: (row[2], row[4], row[0]))  # priority, due time, id
        for job_id, queue, priority, execution_id, execute_after, enqueued_at, current in candidates:
            if len(claimed) >= params.limit:
                break
            taken.append(job_id)
            if execution_id == current:
                claimed.append(
                    ClaimedJob(
                        job_id,
                        queue,
                        priority,
                        execution_id,
                        from_microseconds(execute_after),
                        from_microseconds(enqueued_at),
                    )
                )
    if not taken:
        return []
    # the candidates were read in this write transaction: nobody can take or lock them meanwhile
    con.execute(q["queue_take"], {"job_ids": json.dumps(taken)})
    con.execute(
        q["queue_lock_claimed"],
        {"job_ids": json.dumps([entry.job_id for entry in claimed]), "owner": params.owner, "now": now},
    )
    if params.with_records and claimed:
        ids = [entry.job_id for entry in claimed]
        records = _records(con, q, ids, set(ids))
        for entry in claimed:
            entry.record = records.get(entry.job_id)
    return claimed


def queue_stats(con: sqlite3.Connection, q: Queries) -> list[QueueStat]:
    return [
        QueueStat(queue, priority, int(ready or 0), int(delayed or 0))
        for queue, priority, ready, delayed in con.execute(q["queue_stats"], {"now": now_us()})
    ]


def clock_now(con: sqlite3.Connection, q: Queries) -> Any:
    return from_microseconds(now_us())


# ----------------------------------------------------------------------------- colonies


def _colony(row: Sequence[Any]) -> ColonyRecord:
    colony_id, name, host, pid, status, state, started_at, heartbeat, progress = row
    return ColonyRecord(
        colony_id,
        name,
        host,
        int(pid),
        status,
        state,
        from_microseconds(started_at),
        from_microseconds(heartbeat),
        _opt_dt(progress),
    )


def colony_upsert(con: sqlite3.Connection, q: Queries, params: ColonyUpsert) -> ColonyRecord:
    progress = params.last_progress_at
    row = con.execute(
        q["colony_upsert"],
        {
            "id": params.id,
            "name": params.name,
            "host": params.host,
            "pid": params.pid,
            "status": params.status,
            "state": params.state,
            "last_progress_at": to_microseconds(progress) if progress is not None else None,
            "now": now_us(),
        },
    ).fetchone()
    return _colony(row)


def colony_get(con: sqlite3.Connection, q: Queries, params: str) -> ColonyRecord | None:
    row = con.execute(q["colony_select"], {"id": params}).fetchone()
    return None if row is None else _colony(row)


def colony_list(con: sqlite3.Connection, q: Queries) -> list[ColonyRecord]:
    return [_colony(row) for row in con.execute(q["colony_select_all"])]


def colony_delete(con: sqlite3.Connection, q: Queries, params: Sequence[str]) -> int:
    # rowcount, not total_changes: the daemon logs deleted by the cascade are not colonies
    return sum(con.execute(q["colony_delete"], {"id": colony_id}).rowcount for colony_id in params)


def colony_delete_stale(con: sqlite3.Connection, q: Queries, params: timedelta) -> list[str]:
    rows = con.execute(q["colony_delete_stale"], {"cutoff": now_us() - _us(params)}).fetchall()
    return sorted(str(row[0]) for row in rows)


def daemon_log_insert(con: sqlite3.Connection, q: Queries, params: Sequence[DaemonLogRow]) -> int:
    now = now_us()
    before = con.total_changes
    con.executemany(
        q["daemon_log_insert"],
        [
            {
                "colony_id": row.colony_id,
                "daemon": row.daemon,
                "level": row.level,
                "message": row.message,
                "created_at": to_microseconds(row.created_at) if row.created_at is not None else None,
                "now": now,
            }
            for row in params
        ],
    )
    return con.total_changes - before


def daemon_log_list(con: sqlite3.Connection, q: Queries, params: DaemonLogList) -> list[DaemonLogRecord]:
    rows = con.execute(
        q["daemon_log_select"],
        {"colony_id": params.colony_id, "daemon": params.daemon, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        DaemonLogRecord(log_id, colony_id, daemon, level, message, from_microseconds(created))
        for log_id, colony_id, daemon, level, message, created in rows
    ]


# ----------------------------------------------------------------------------- recurring jobs


def _recurring(row: Sequence[Any]) -> RecurringRecord:
    rid, definition, state_name, reason, next_run, job_id, stats, version, created, modified = row
    return RecurringRecord(
        rid,
        definition,
        state_name,
        reason,
        _opt_dt(next_run),
        job_id,
        stats,
        int(version),
        from_microseconds(created),
        from_microseconds(modified),
    )


def recurring_get(con: sqlite3.Connection, q: Queries, params: RecurringGet) -> RecurringRecord | None:
    row = con.execute(q["recurring_select"], {"id": params.id}).fetchone()
    return None if row is None else _recurring(row)


def recurring_list(con: sqlite3.Connection, q: Queries, params: RecurringList) -> list[RecurringRecord]:
    name = "recurring_select_due" if params.due else "recurring_select_running" if params.running else None
    values = {"after_id": params.after_id, "limit": params.limit, "now": now_us()}
    rows = con.execute(q[name or "recurring_select_page"], values)
    return [_recurring(row) for row in rows]


def recurring_write(con: sqlite3.Connection, q: Queries, params: RecurringWrite) -> bool:
    values = recurring_write_params(params, now_us(), to_microseconds)
    query = "recurring_insert" if params.expected_version is None else "recurring_update"
    return con.execute(q[query], values).rowcount == 1


def recurring_delete(con: sqlite3.Connection, q: Queries, params: str) -> bool:
    con.execute(q["recurring_event_delete_all"], {"id": params})
    return con.execute(q["recurring_delete"], {"id": params}).rowcount == 1


def occurrence_insert(con: sqlite3.Connection, q: Queries, params: OccurrenceInsert) -> bool:
    values = occurrence_params(params, now_us(), to_microseconds)
    return con.execute(q["occurrence_insert"], values).rowcount == 1


def recurring_event_insert(con: sqlite3.Connection, q: Queries, params: Sequence[RecurringEventRow]) -> int:
    before = con.total_changes
    con.executemany(q["recurring_event_insert"], event_params(params, now_us()))
    return con.total_changes - before


def recurring_event_list(con: sqlite3.Connection, q: Queries, params: RecurringEventList) -> list[RecurringEventRecord]:
    rows = con.execute(
        q["recurring_event_select"],
        event_list_params(params),
    )
    return [
        RecurringEventRecord(event_id, rid, kind, name, message, fields, from_microseconds(created))
        for event_id, rid, kind, name, message, fields, created in rows
    ]


def recurring_event_prune(con: sqlite3.Connection, q: Queries, params: RecurringEventPrune) -> int:
    deleted = 0
    base = {"recurring_id": params.recurring_id, "kind": params.kind}
    if params.keep is not None:
        deleted += con.execute(q["recurring_event_prune_keep"], {**base, "keep": params.keep}).rowcount
    if params.older_than is not None:
        cutoff = now_us() - _us(params.older_than)
        deleted += con.execute(q["recurring_event_prune_age"], {**base, "cutoff": cutoff}).rowcount
    return deleted


# ----------------------------------------------------------------------------- maintenance


def job_purge(con: sqlite3.Connection, q: Queries, params: JobPurge) -> int:
    cutoff = now_us() - _us(params.older_than)
    deleted = 0
    for state in params.states:
        if deleted >= params.limit:
            break
        values = {"state": state, "cutoff": cutoff, "limit": params.limit - deleted}
        deleted += con.execute(q["job_purge"], values).rowcount
    return deleted


_PURGED_TABLES = {
    "job_log": "job_log_purge",
    "daemon_log": "daemon_log_purge",
    "recurring_occurrence": "recurring_occurrence_purge",
}


def log_purge(con: sqlite3.Connection, q: Queries, params: LogPurge) -> int:
    query = _PURGED_TABLES[params.table]
    return con.execute(q[query], {"cutoff": now_us() - _us(params.older_than), "limit": params.limit}).rowcount


def lease_acquire(con: sqlite3.Connection, q: Queries, params: LeaseAcquire) -> bool:
    if params.release:
        return con.execute(q["lease_release"], {"name": params.name, "holder": params.holder}).rowcount == 1
    now = now_us()
    values = {"name": params.name, "holder": params.holder, "expires_at": now + _us(params.ttl), "now": now}
    return con.execute(q["lease_take"], values).rowcount == 1
