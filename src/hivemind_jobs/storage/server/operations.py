"""The storage operations for PostgreSQL and MySQL/MariaDB, written once for both.

Each function is one unit of work on one connection inside the caller's transaction. ``now`` is
always the database clock: read by the operation's first statement (or by ``clock_now``) and bound
into the statements that follow, so a batch gets one consistent time. Rows a decision depends on
(fences, heartbeats, takeovers) are read ``FOR UPDATE`` in id order, so concurrent colonies
serialize on them without deadlocking, and the claim skips rows other transactions hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hivemind_jobs.query.conditions import Condition
from hivemind_jobs.storage.compiler import (
    Compiled,
    Tables,
    compile_count,
    compile_job_search,
    compile_lock,
    compile_queues,
)
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
    purge_query,
    recurring_write_params,
    state_params,
)
from hivemind_jobs.storage.sql import SQL, QueryBook, to_pyformat

if TYPE_CHECKING:
    from datetime import timedelta

    from hivemind_jobs.storage.server.base import Connection

Queries = Mapping[str, SQL]


async def clock_now(c: Connection, q: Queries) -> datetime:
    rows = await c.fetchall(q["clock_now"])
    return c.dt(rows[0][0])


# ----------------------------------------------------------------------------- conversions


def _state_params(c: Connection, job_id: int, state: StateRow) -> dict[str, Any]:
    return state_params(job_id, state, c.bind_dt)


def _property_params(c: Connection, job_id: int, row: PropertyRow) -> dict[str, Any]:
    return property_params(job_id, row, c.bind_dt)


def _property_from_row(c: Connection, row: Sequence[Any]) -> PropertyRow:
    return property_from_row(row, c.dt)


def _due(pointer: QueuePointer, now: datetime, kept: datetime | None) -> datetime:
    """When a queue entry is due; ``now`` is the database clock this operation read, so a relative
    delay is measured on the database's clock and the writer's clock plays no part."""
    if kept is not None:
        return kept
    if pointer.execute_after is not None:
        return pointer.execute_after
    if pointer.delay is not None:
        return now + pointer.delay
    return now


def _queue_params(
    c: Connection, job_id: int, pointer: QueuePointer, now: datetime, kept: datetime | None = None
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "queue": pointer.queue,
        "priority": pointer.priority,
        "execution_id": pointer.execution_id,
        "execute_after": c.bind_dt(_due(pointer, now, kept)),
        "now": c.bind_dt(now),
    }


async def _kept_due(c: Connection, q: Queries, pointers: Sequence[tuple[int, QueuePointer]]) -> dict[int, datetime]:
    """The due times of existing entries that ``keep_due`` pointers keep (one read, only when asked)."""
    ids = sorted(job_id for job_id, pointer in pointers if pointer.keep_due)
    if not ids:
        return {}
    rows = await c.fetchall(q["queue_due_many"], {"job_ids": ids})
    return {int(job_id): c.dt(execute_after) for job_id, execute_after in rows}


def _links(rows: Sequence[Sequence[Any]]) -> tuple[ContinuationLink, ...]:
    return tuple(
        ContinuationLink(int(parent_id), int(child_id), fired_state) for parent_id, child_id, fired_state in rows
    )


def _opt(c: Connection, value: datetime | None) -> datetime | None:
    return None if value is None else c.dt(value)


# ----------------------------------------------------------------------------- jobs


async def job_insert(c: Connection, q: Queries, params: Sequence[JobInsert]) -> list[JobInserted]:
    if not params:
        return []
    now = await clock_now(c, q)
    bound_now = c.bind_dt(now)
    ids = await c.insert_jobs(
        q,
        [
            {
                "queue": job.queue,
                "priority": job.priority,
                "execution_id": job.execution_id,
                "state_name": job.states[-1].name,
                "state_sequence": job.states[-1].sequence,
                "state_elected_at": c.bind_dt(job.states[-1].elected_at),
                "invocation": job.invocation,
                "middleware": job.middleware,
                "lock_owner": job.lock_owner,
                "locked_at": bound_now if job.lock_owner is not None else None,
                "now": bound_now,
            }
            for job in params
        ],
    )
    pairs = list(zip(ids, params, strict=True))
    states = [_state_params(c, job_id, state) for job_id, job in pairs for state in job.states]
    properties = [_property_params(c, job_id, prop) for job_id, job in pairs for prop in job.properties]
    pointers = [_queue_params(c, job_id, job.enqueue, now) for job_id, job in pairs if job.enqueue is not None]
    links = [
        {"parent_id": job.awaiting_parent, "child_id": job_id, "now": bound_now}
        for job_id, job in pairs
        if job.awaiting_parent is not None
    ]
    async with c.pipeline():
        await c.write_rows(q, "job_state_insert", states)
        if properties:
            await c.write_rows(q, "job_property_upsert", properties)
        if pointers:
            await c.write_rows(q, "queue_upsert", pointers)
            await c.notify(q, [pointer["job_id"] for pointer in pointers])
        if links:
            await c.executemany(q["continuation_insert"], links)
    return [JobInserted(job_id, now) for job_id in ids]


async def _records(
    c: Connection,
    q: Queries,
    ids: Sequence[int],
    acquired: set[int],
    *,
    writes: Sequence[tuple[SQL, dict[str, Any]]] = (),
) -> dict[int, JobRecord]:
    """Full records of the jobs ``ids`` (three statements whatever the count), after ``writes``."""
    if not ids:
        return {}
    key = {"job_ids": list(ids)}
    state_rows, property_rows, job_rows = await c.fetch_each(
        [(q["job_state_select_many"], key), (q["job_property_select_many"], key), (q["job_select_many"], key)],
        writes=writes,
    )
    states: dict[int, list[StateRow]] = {}
    for job_id, sequence, name, elected_at, reason, fields in state_rows:
        states.setdefault(job_id, []).append(StateRow(sequence, name, c.dt(elected_at), reason, fields))
    properties: dict[int, list[PropertyRow]] = {}
    for row in property_rows:
        properties.setdefault(row[0], []).append(_property_from_row(c, row[1:]))
    records: dict[int, JobRecord] = {}
    for row in job_rows:
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
            created_at=c.dt(created_at),
            modified_at=c.dt(modified_at),
            locked_by=locked_by,
            locked_at=_opt(c, locked_at),
            lock_heartbeat=_opt(c, heartbeat),
            states=tuple(states.get(job_id, ())),
            properties=tuple(properties.get(job_id, ())),
            lock_acquired=job_id in acquired,
        )
    return records


async def job_get(c: Connection, q: Queries, params: JobGet) -> JobRecord | None:
    acquired: set[int] = set()
    if params.lock_requester is not None:
        now = await clock_now(c, q)
        matched = await c.execute(
            q["job_lock"], {"job_id": params.job_id, "requester": params.lock_requester, "now": c.bind_dt(now)}
        )
        if matched == 1:
            acquired.add(params.job_id)
    elif params.for_update:
        await c.fetchall(q["job_lock_row"], {"job_id": params.job_id})
    return (await _records(c, q, [params.job_id], acquired)).get(params.job_id)


async def job_get_many(c: Connection, q: Queries, params: Sequence[int]) -> list[JobRecord]:
    records = await _records(c, q, params, set())
    return [records[job_id] for job_id in params if job_id in records]


async def job_update_many(c: Connection, q: Queries, params: Sequence[JobUpdate]) -> list[JobUpdated]:
    ids = [update.job_id for update in params]
    if len(set(ids)) != len(ids):  # the same job twice: each save sees the one before it
        return [(await _update_batch(c, q, [update]))[0] for update in params]
    return await _update_batch(c, q, params)


async def _update_batch(c: Connection, q: Queries, params: Sequence[JobUpdate]) -> list[JobUpdated]:
    """Fenced saves of distinct jobs: the fences are read with the rows locked (in id order), so
    every save that passed its fence applies."""
    if not params:
        return []
    fence_rows = await c.fetchall(q["job_fence_check_many"], {"job_ids": sorted(update.job_id for update in params)})
    if fence_rows:
        now = c.dt(fence_rows[0][4])
    else:
        return [JobUpdated(UpdateOutcome.NOT_FOUND) for _ in params]
    rows = {job_id: (execution, holder, _opt(c, heartbeat)) for job_id, execution, holder, heartbeat, _ in fence_rows}
    outcomes = [fence_outcome(rows.get(u.job_id), u, now - u.lock_timeout) for u in params]
    saved = [update for update, outcome in zip(params, outcomes, strict=True) if outcome is UpdateOutcome.SAVED]
    bound_now = c.bind_dt(now)
    states = [_state_params(c, u.job_id, state) for u in saved for state in u.new_states]
    properties = [_property_params(c, u.job_id, prop) for u in saved for prop in u.set_properties]
    removed = [{"job_id": u.job_id, "name": name} for u in saved for name in u.removed_properties]
    enqueue = [(u.job_id, p) for u in saved if (p := u.enqueue) is not None]
    kept = await _kept_due(c, q, enqueue)
    pointers = [_queue_params(c, job_id, p, now, kept.get(job_id)) for job_id, p in enqueue]
    dequeued = [u.job_id for u in saved if u.enqueue is None and u.dequeue]
    links = [
        {"parent_id": u.awaiting_parent, "child_id": u.job_id, "now": bound_now}
        for u in saved
        if u.awaiting_parent is not None
    ]
    async with c.pipeline():  # every write of the batch in one round trip where the driver can
        if saved:
            await c.write_rows(q, "job_update", [_update_params(c, update, bound_now) for update in saved])
        if states:
            await c.write_rows(q, "job_state_insert", states)
        if properties:
            await c.write_rows(q, "job_property_upsert", properties)
        if removed:
            await c.executemany(q["job_property_delete"], removed)
        if pointers:
            await c.write_rows(q, "queue_upsert", pointers)
            await c.notify(q, [pointer["job_id"] for pointer in pointers])
        if dequeued:
            await c.execute(q["queue_take"], {"job_ids": dequeued})
        if links:
            await c.executemany(q["continuation_insert"], links)
    changed = [u.job_id for u in saved if u.new_states]
    released = [u.job_id for u in saved if u.release_lock]
    children: dict[int, list[int]] = {}
    fired: dict[int, list[ContinuationLink]] = {}
    if changed or released:
        # one query for both: children waiting on changed jobs, fired parents of released ones
        link_rows = await c.fetchall(
            q["continuation_links_many"], {"changed_ids": changed or [0], "released_ids": released or [0]}
        )
        for link in _links(link_rows):
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
                modified_at=now,
                lock_heartbeat=None if update.release_lock else now,
                children=tuple(children.get(update.job_id, ())),
                fired=tuple(fired.get(update.job_id, ())),
            )
        )
    return results


def _update_params(c: Connection, params: JobUpdate, now: Any) -> dict[str, Any]:
    current = params.new_states[-1] if params.new_states else None
    return {
        "job_id": params.job_id,
        "queue": params.queue,
        "priority": params.priority,
        "execution_id": params.execution_id,
        "state_name": current.name if current else None,
        "state_sequence": current.sequence if current else None,
        "state_elected_at": c.bind_dt(current.elected_at) if current else None,
        "release_lock": params.release_lock,
        "now": now,
    }


async def job_lock_takeover(c: Connection, q: Queries, params: JobLockTakeover) -> list[int]:
    now = await clock_now(c, q)
    rows = await c.fetchall(
        q["job_lock_takeover_select"], {"cutoff": c.bind_dt(now - params.lock_timeout), "limit": params.limit}
    )
    ids = sorted(int(row[0]) for row in rows)
    if ids:
        await c.execute(
            q["job_lock_takeover"], {"job_ids": ids, "new_holder": params.new_holder, "now": c.bind_dt(now)}
        )
    return ids


async def job_lock_release(c: Connection, q: Queries, params: JobLockRelease) -> JobLockReleased:
    matched = await c.execute(q["job_lock_release"], {"job_id": params.job_id, "holder": params.holder})
    if matched != 1:
        return JobLockReleased(False)
    fired = _links(await c.fetchall(q["continuation_fired_for_child"], {"child_id": params.job_id}))
    return JobLockReleased(True, fired)


async def job_heartbeat(c: Connection, q: Queries, params: JobHeartbeat) -> frozenset[int]:
    if not params.job_ids:
        return frozenset()
    now = await clock_now(c, q)
    rows = await c.fetchall(
        q["job_heartbeat_select"],
        {
            "job_ids": sorted(params.job_ids),
            "holder": params.holder,
            "cutoff": c.bind_dt(now - params.lock_timeout),
        },
    )
    alive = sorted(int(row[0]) for row in rows)
    if alive:
        await c.execute(q["job_heartbeat"], {"job_ids": alive, "now": c.bind_dt(now)})
    return frozenset(alive)


async def job_state_counts(c: Connection, q: Queries) -> dict[str, int]:
    return {name: int(count) for name, count in await c.fetchall(q["job_state_counts"])}


def _tables(q: Queries) -> Tables:
    assert isinstance(q, QueryBook)
    return q.table


def _sql(compiled: Compiled) -> SQL:
    return SQL(to_pyformat(compiled.sql))


async def job_search(c: Connection, q: Queries, params: JobSearch) -> list[JobRecord]:
    """Matching jobs in order; with a lock requester, unlocked matches are locked for it and rows
    other transactions hold are skipped (``FOR UPDATE SKIP LOCKED``)."""
    tables = _tables(q)
    compiled = compile_job_search(c.dialect, tables, params)
    ids = [int(row[0]) for row in await c.fetchall(_sql(compiled), compiled.params)]
    acquired: set[int] = set()
    writes: list[tuple[SQL, dict[str, Any]]] = []
    if ids and params.lock_requester is not None:
        now = await clock_now(c, q)
        lock = compile_lock(c.dialect, tables, sorted(ids), params.lock_requester, c.bind_dt(now))
        writes.append((_sql(lock), lock.params))
        acquired = set(ids)
    records = await _records(c, q, ids, acquired, writes=writes)
    return [records[job_id] for job_id in ids if job_id in records]


async def job_count(c: Connection, q: Queries, params: Condition | None) -> int:
    compiled = compile_count(c.dialect, _tables(q), params)
    return int((await c.fetchall(_sql(compiled), compiled.params))[0][0])


async def job_queues(c: Connection, q: Queries, params: JobQueues) -> list[str]:
    compiled = compile_queues(c.dialect, _tables(q), params.prefix, params.limit)
    return [str(row[0]) for row in await c.fetchall(_sql(compiled), compiled.params)]


# ----------------------------------------------------------------------------- data, logs, actions


async def job_data_get(c: Connection, q: Queries, params: JobDataGet) -> str | None:
    rows = await c.fetchall(q["job_data_select"], {"job_id": params.job_id, "name": params.name})
    return None if not rows else str(rows[0][0])


async def job_data_set(c: Connection, q: Queries, params: JobDataSet) -> bool:
    if not await c.fetchall(q["job_lock_row"], {"job_id": params.job_id}):
        return False
    now = await clock_now(c, q)
    await c.execute(
        q["job_data_upsert"],
        {"job_id": params.job_id, "name": params.name, "value": params.value, "now": c.bind_dt(now)},
    )
    return True


async def job_log_insert(c: Connection, q: Queries, params: Sequence[JobLogRow]) -> int:
    if not params:
        return 0
    now = await clock_now(c, q)
    return await c.executemany(
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
                "created_at": c.bind_dt(row.created_at if row.created_at is not None else now),
            }
            for row in params
        ],
    )


async def job_log_list(c: Connection, q: Queries, params: JobLogList) -> list[JobLogRecord]:
    rows = await c.fetchall(
        q["job_log_select"],
        {"job_id": params.job_id, "min_level": params.min_level, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        JobLogRecord(log_id, job_id, level, message, logger, exc_type, exc_message, trace, c.dt(created))
        for log_id, job_id, level, message, logger, exc_type, exc_message, trace, created in rows
    ]


async def job_action_insert(c: Connection, q: Queries, params: JobActionInsert) -> int:
    now = await clock_now(c, q)
    return await c.insert_id(
        q["job_action_insert"],
        {
            "job_id": params.job_id,
            "execution_id": params.execution_id,
            "kind": params.kind,
            "payload": params.payload,
            "requested_by": params.requested_by,
            "now": c.bind_dt(now),
        },
    )


async def job_action_list(c: Connection, q: Queries, params: JobActionList) -> list[JobActionRecord]:
    if not params.job_ids:
        return []
    rows = await c.fetchall(q["job_action_select"], {"job_ids": list(params.job_ids), "limit": params.limit})
    return [
        JobActionRecord(action_id, job_id, execution_id, kind, payload, requested_by, c.dt(created))
        for action_id, job_id, execution_id, kind, payload, requested_by, created in rows
    ]


async def job_action_delete(c: Connection, q: Queries, params: Sequence[int]) -> int:
    if not params:
        return 0
    return await c.execute(q["job_action_delete"], {"ids": list(params)})


async def continuation_list(c: Connection, q: Queries, job_id: int) -> list[ContinuationLink]:
    return list(_links(await c.fetchall(q["continuation_list"], {"job_id": job_id})))


async def continuation_mark(c: Connection, q: Queries, params: Sequence[ContinuationMark]) -> None:
    for mark in params:
        key = {"parent_id": mark.parent_id, "child_id": mark.child_id}
        if mark.delete:
            await c.execute(q["continuation_delete"], key)
        else:
            await c.execute(q["continuation_fire"], {**key, "fired_state": mark.fired_state})


# ----------------------------------------------------------------------------- queue


async def queue_claim(c: Connection, q: Queries, params: QueueClaim) -> list[ClaimedJob]:
    """Per queue group: lock the best due entries (skipping rows other transactions hold and jobs
    locked by someone); then delete them, lock their jobs for the owner and read the records, in
    one round trip where the driver pipelines. (The groups' queues are distinct, so deferring the
    deletes cannot claim an entry twice.)"""
    claimed: list[ClaimedJob] = []
    taken: list[int] = []
    seen: set[str] = set()
    now: Any = None
    for group in params.groups:
        remaining = params.limit - len(claimed)
        if remaining <= 0:
            break
        queues = [queue for queue in dict.fromkeys(group) if queue not in seen]
        seen.update(queues)
        if not queues:
            continue
        rows = await c.claim_rows(q, {"queues": queues, "limit": remaining})
        if not rows:
            continue
        now = rows[0][7] if now is None else now
        taken.extend(int(row[0]) for row in rows)
        fresh = [row for row in rows if row[3] == row[6]]
        fresh.sort(key=lambda row: (row[2], row[4], row[0]))  # priority, due time, id
        claimed.extend(
            ClaimedJob(int(row[0]), row[1], int(row[2]), row[3], c.dt(row[4]), c.dt(row[5])) for row in fresh
        )
    if not taken:
        return []
    writes: list[tuple[SQL, dict[str, Any]]] = [(q["queue_take"], {"job_ids": sorted(taken)})]
    if claimed:
        ids = sorted(entry.job_id for entry in claimed)
        writes.append((q["queue_lock_claimed"], {"job_ids": ids, "owner": params.owner, "now": now}))
    if not (params.with_records and claimed):
        async with c.pipeline():
            for sql, values in writes:
                await c.execute(sql, values)
        return claimed
    ids = [entry.job_id for entry in claimed]
    records = await _records(c, q, ids, set(ids), writes=writes)
    for entry in claimed:
        entry.record = records.get(entry.job_id)
    return claimed


async def queue_stats(c: Connection, q: Queries) -> list[QueueStat]:
    now = await clock_now(c, q)
    return [
        QueueStat(queue, int(priority), int(ready or 0), int(delayed or 0))
        for queue, priority, ready, delayed in await c.fetchall(q["queue_stats"], {"now": c.bind_dt(now)})
    ]


# ----------------------------------------------------------------------------- colonies


def _colony(c: Connection, row: Sequence[Any]) -> ColonyRecord:
    colony_id, name, host, pid, status, state, started_at, heartbeat, progress = row
    return ColonyRecord(
        colony_id, name, host, int(pid), status, state, c.dt(started_at), c.dt(heartbeat), _opt(c, progress)
    )


async def colony_upsert(c: Connection, q: Queries, params: ColonyUpsert) -> ColonyRecord:
    now = await clock_now(c, q)
    progress = params.last_progress_at
    await c.execute(
        q["colony_upsert"],
        {
            "id": params.id,
            "name": params.name,
            "host": params.host,
            "pid": params.pid,
            "status": params.status,
            "state": params.state,
            "last_progress_at": c.bind_dt(progress) if progress is not None else None,
            "now": c.bind_dt(now),
        },
    )
    rows = await c.fetchall(q["colony_select"], {"id": params.id})
    return _colony(c, rows[0])


async def colony_get(c: Connection, q: Queries, params: str) -> ColonyRecord | None:
    rows = await c.fetchall(q["colony_select"], {"id": params})
    return _colony(c, rows[0]) if rows else None


async def colony_list(c: Connection, q: Queries) -> list[ColonyRecord]:
    return [_colony(c, row) for row in await c.fetchall(q["colony_select_all"])]


async def colony_delete(c: Connection, q: Queries, params: Sequence[str]) -> int:
    if not params:
        return 0
    return await c.execute(q["colony_delete"], {"ids": list(params)})


async def colony_delete_stale(c: Connection, q: Queries, params: timedelta) -> list[str]:
    now = await clock_now(c, q)
    rows = await c.fetchall(q["colony_stale_select"], {"cutoff": c.bind_dt(now - params)})
    ids = sorted(str(row[0]) for row in rows)
    await colony_delete(c, q, ids)
    return ids


async def daemon_log_insert(c: Connection, q: Queries, params: Sequence[DaemonLogRow]) -> int:
    if not params:
        return 0
    now = await clock_now(c, q)
    return await c.executemany(
        q["daemon_log_insert"],
        [
            {
                "colony_id": row.colony_id,
                "daemon": row.daemon,
                "level": row.level,
                "message": row.message,
                "created_at": c.bind_dt(row.created_at if row.created_at is not None else now),
            }
            for row in params
        ],
    )


async def daemon_log_list(c: Connection, q: Queries, params: DaemonLogList) -> list[DaemonLogRecord]:
    rows = await c.fetchall(
        q["daemon_log_select"],
        {"colony_id": params.colony_id, "daemon": params.daemon, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        DaemonLogRecord(log_id, colony_id, daemon, level, message, c.dt(created))
        for log_id, colony_id, daemon, level, message, created in rows
    ]


# ----------------------------------------------------------------------------- recurring jobs


def _recurring(c: Connection, row: Sequence[Any]) -> RecurringRecord:
    rid, definition, state_name, reason, next_run, job_id, stats, version, created, modified = row
    return RecurringRecord(
        rid,
        definition,
        state_name,
        reason,
        c.dt(next_run) if next_run is not None else None,
        int(job_id) if job_id is not None else None,
        stats,
        int(version),
        c.dt(created),
        c.dt(modified),
    )


async def recurring_get(c: Connection, q: Queries, params: RecurringGet) -> RecurringRecord | None:
    query = "recurring_select_for_update" if params.for_update else "recurring_select"
    rows = await c.fetchall(q[query], {"id": params.id})
    return _recurring(c, rows[0]) if rows else None


async def recurring_list(c: Connection, q: Queries, params: RecurringList) -> list[RecurringRecord]:
    values: dict[str, Any] = {"after_id": params.after_id, "limit": params.limit}
    if params.due:
        values["now"] = c.bind_dt(await clock_now(c, q))
        query = "recurring_select_due"
    else:
        query = "recurring_select_running" if params.running else "recurring_select_page"
    return [_recurring(c, row) for row in await c.fetchall(q[query], values)]


async def recurring_write(c: Connection, q: Queries, params: RecurringWrite) -> bool:
    values = recurring_write_params(params, c.bind_dt(await clock_now(c, q)), c.bind_dt)
    if params.expected_version is None:
        return await c.insert_if_absent(q["recurring_insert"], values)
    return await c.execute(q["recurring_update"], values) == 1


async def recurring_delete(c: Connection, q: Queries, params: str) -> bool:
    await c.execute(q["recurring_event_delete_all"], {"id": params})
    return await c.execute(q["recurring_delete"], {"id": params}) == 1


async def occurrence_insert(c: Connection, q: Queries, params: OccurrenceInsert) -> bool:
    values = occurrence_params(params, c.bind_dt(await clock_now(c, q)), c.bind_dt)
    return await c.insert_if_absent(q["occurrence_insert"], values)


async def recurring_event_insert(c: Connection, q: Queries, params: Sequence[RecurringEventRow]) -> int:
    if not params:
        return 0
    return await c.executemany(q["recurring_event_insert"], event_params(params, c.bind_dt(await clock_now(c, q))))


async def recurring_event_list(c: Connection, q: Queries, params: RecurringEventList) -> list[RecurringEventRecord]:
    rows = await c.fetchall(q["recurring_event_select"], event_list_params(params))
    return [
        RecurringEventRecord(int(event_id), rid, kind, name, message, fields, c.dt(created))
        for event_id, rid, kind, name, message, fields, created in rows
    ]


async def recurring_event_prune(c: Connection, q: Queries, params: RecurringEventPrune) -> int:
    deleted = 0
    base = {"recurring_id": params.recurring_id, "kind": params.kind}
    if params.keep is not None:
        rows = await c.fetchall(q["recurring_event_kept_boundary"], {**base, "keep": params.keep})
        if rows:
            deleted += await c.execute(q["recurring_event_prune_to"], {**base, "last_id": rows[0][0]})
    if params.older_than is not None:
        cutoff = c.bind_dt(await clock_now(c, q) - params.older_than)
        deleted += await c.execute(q["recurring_event_prune_age"], {**base, "cutoff": cutoff})
    return deleted


# ----------------------------------------------------------------------------- maintenance


async def job_purge(c: Connection, q: Queries, params: JobPurge) -> int:
    cutoff = c.bind_dt(await clock_now(c, q) - params.older_than)
    ids: list[int] = []
    for state in params.states:
        if len(ids) >= params.limit:
            break
        rows = await c.fetchall(
            q["job_purge_select"], {"state": state, "cutoff": cutoff, "limit": params.limit - len(ids)}
        )
        ids.extend(int(row[0]) for row in rows)
    if not ids:
        return 0
    return await c.execute(q["job_purge"], {"ids": sorted(ids)})


async def log_purge(c: Connection, q: Queries, params: LogPurge) -> int:
    query = purge_query(params)
    cutoff = c.bind_dt(await clock_now(c, q) - params.older_than)
    return await c.execute(q[query], {"cutoff": cutoff, "limit": params.limit})


async def lease_acquire(c: Connection, q: Queries, params: LeaseAcquire) -> bool:
    if params.release:
        return await c.execute(q["lease_release"], {"name": params.name, "holder": params.holder}) == 1
    now = await clock_now(c, q)
    values = {"name": params.name, "holder": params.holder, "expires_at": c.bind_dt(now + params.ttl)}
    if await c.insert_if_absent(q["lease_insert"], values):
        return True
    rows = await c.fetchall(q["lease_select_for_update"], {"name": params.name})
    if not rows:
        return False
    holder, expires_at = rows[0]
    if holder != params.holder and c.dt(expires_at) >= now:
        return False
    await c.execute(q["lease_update"], values)
    return True


def utc(value: datetime) -> datetime:
    """An aware datetime in UTC (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
