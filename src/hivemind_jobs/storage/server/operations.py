"""The storage operations for PostgreSQL and MySQL/MariaDB, written once for both.

Each function is one unit of work on one connection inside the caller's transaction. ``now`` is
always the database clock: read by the operation's first statement (or by ``clock_now``) and bound
into the statements that follow, so a batch gets one consistent time. Rows a decision depends on
(fences, heartbeats, takeovers) are read ``FOR UPDATE`` in id order, so concurrent colonies
serialize on them without deadlocking, and the claim skips rows other transactions hold.

:class:`ServerOperations` binds every function to the transaction class (see
:mod:`hivemind_jobs.storage.binding`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hivemind_jobs.query.conditions import Condition
from hivemind_jobs.storage import params as p
from hivemind_jobs.storage.binding import BoundOperations, async_operation
from hivemind_jobs.storage.compiler import (
    Compiled,
    Tables,
    compile_count,
    compile_job_search,
    compile_lock,
    compile_queues,
)
from hivemind_jobs.storage.rows import (
    ClaimWalk,
    claim_starts,
    continuation_links,
    event_list_params,
    event_params,
    fence_saves,
    finish_params,
    insert_writes,
    job_records,
    job_rows,
    kept_due_ids,
    lean_revert_params,
    limit_set_params,
    occurrence_params,
    plain_finishes,
    purge_query,
    queue_rows,
    recurring_write_params,
    same,
    save_results,
    save_writes,
    start_writes,
    unique_set_params,
    unique_states,
)
from hivemind_jobs.storage.sql import SQL, QueryBook, to_pyformat

if TYPE_CHECKING:
    from datetime import timedelta

    from hivemind_jobs.storage.protocol import Operations
    from hivemind_jobs.storage.server.base import Connection

Queries = Mapping[str, SQL]


async def clock_now(c: Connection, q: Queries) -> datetime:
    rows = await c.fetchall(q["clock_now"])
    return c.dt(rows[0][0])


# ----------------------------------------------------------------------------- conversions


async def _kept_due(c: Connection, q: Queries, pointers: Sequence[tuple[int, p.QueuePointer]]) -> dict[int, datetime]:
    """The due times of existing entries that ``keep_due`` pointers keep (one read, only when asked)."""
    ids = kept_due_ids(pointers)
    if not ids:
        return {}
    rows = await c.fetchall(q["queue_due_many"], {"job_ids": ids})
    return {int(job_id): c.dt(execute_after) for job_id, execute_after in rows}


def _opt(c: Connection, value: datetime | None) -> datetime | None:
    return None if value is None else c.dt(value)


# ----------------------------------------------------------------------------- jobs


async def _inserted_before(c: Connection, q: Queries, params: Sequence[p.JobInsert]) -> list[p.JobInserted] | None:
    """The jobs ``params`` describe if an earlier attempt inserted them (all or none: one statement)."""
    executions = [job.execution_id for job in params]
    # a rare recovery path: the execution id has no index of its own
    rows = await c.fetchall(q["job_ids_by_execution"], {"first_id": 0, "execution_ids": executions})
    ids = {execution: int(job_id) for job_id, execution in rows}
    if not ids:
        return None
    found = await c.fetchall(q["job_select_many"], {"job_ids": sorted(ids.values())})
    created = {int(row[0]): c.dt(row[6]) for row in found}
    return [p.JobInserted(ids[execution], created[ids[execution]]) for execution in executions]


async def job_insert(c: Connection, q: Queries, params: Sequence[p.JobInsert]) -> list[p.JobInserted]:
    if not params:
        return []
    if c.sole and c.retried:
        # The connection of the first attempt was lost: its statement, which commits on its own,
        # may have been committed before the answer was lost. Then the jobs exist (by execution
        # id). This attempt reads first, so it commits as usual, after its insert.
        c.sole = False
        existing = await _inserted_before(c, q, params)
        if existing is not None:
            return existing
    written = await c.insert_new_jobs(q, params)
    if written is not None:
        job_ids, created = written
        return [p.JobInserted(job_id, created) for job_id in job_ids]
    now = await clock_now(c, q)
    times = c.times
    ids = await c.insert_jobs(q, job_rows(params, times.bind(now), times.encode))
    writes = insert_writes(ids, params, now, times)
    async with c.pipeline():
        await c.write_rows(q, "job_state_insert", writes.states)
        if writes.properties:
            await c.write_rows(q, "job_property_upsert", writes.properties)
        if writes.pointers:
            await c.write_rows(q, "queue_upsert", writes.pointers)
            await c.notify(q, [pointer["job_id"] for pointer in writes.pointers])
        if writes.links:
            await c.executemany(q["continuation_insert"], writes.links)
    return [p.JobInserted(job_id, now) for job_id in ids]


async def _records(
    c: Connection,
    q: Queries,
    ids: Sequence[int],
    acquired: set[int],
    *,
    writes: Sequence[tuple[SQL, dict[str, Any]]] = (),
    claim: Mapping[str, Any] | None = None,
) -> dict[int, p.JobRecord]:
    """Full records of the jobs ``ids`` (three statements whatever the count), after ``writes``;
    with ``claim`` (``owner``, ``now``), as that claim locks them (``queue_select_claimed``)."""
    if not ids:
        return {}
    key = {"job_ids": list(ids)}
    jobs = (q["job_select_many"], key) if claim is None else (q["queue_select_claimed"], {**key, **claim})
    state_rows, property_rows, rows = await c.fetch_each(
        [(q["job_state_select_many"], key), (q["job_property_select_many"], key), jobs],
        writes=writes,
    )
    return job_records(state_rows, property_rows, rows, acquired, c.dt)


async def job_get(c: Connection, q: Queries, params: p.JobGet) -> p.JobRecord | None:
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


async def job_get_many(c: Connection, q: Queries, params: Sequence[int]) -> list[p.JobRecord]:
    records = await _records(c, q, params, set())
    return [records[job_id] for job_id in params if job_id in records]


async def job_update_many(c: Connection, q: Queries, params: Sequence[p.JobUpdate]) -> list[p.JobUpdated]:
    ids = [update.job_id for update in params]
    if len(set(ids)) != len(ids):  # the same job twice: each save sees the one before it
        return [(await _update_batch(c, q, [update]))[0] for update in params]
    return await _update_batch(c, q, params)


async def job_update(c: Connection, q: Queries, params: p.JobUpdate) -> p.JobUpdated:
    return (await job_update_many(c, q, [params]))[0]


async def _update_batch(c: Connection, q: Queries, params: Sequence[p.JobUpdate]) -> list[p.JobUpdated]:
    """Fenced saves of distinct jobs: the fences are read with the rows locked (in id order), so
    every save that passed its fence applies."""
    if not params:
        return []
    plain = plain_finishes(params)
    if c.finishes_in_update and plain:
        return await _finish_batch(c, q, params)
    ids = sorted(update.job_id for update in params)
    fence = (q["job_fence_check_many"], {"job_ids": ids})
    early: tuple[p.ContinuationLink, ...] | None = None
    if plain:
        # saves that only end runs write no link: their links are read with the fences (the jobs
        # locked by then), so that the writes can end the transaction when they have none
        fence_rows, link_rows = await c.fetch_each(
            [fence, (q["continuation_links_many"], {"changed_ids": ids, "released_ids": ids})]
        )
        early = continuation_links(link_rows)
    else:
        fence_rows = await c.fetchall(*fence)
    if not fence_rows:
        return [p.JobUpdated(p.UpdateOutcome.NOT_FOUND) for _ in params]
    now = c.dt(fence_rows[0][4])
    outcomes, saved = fence_saves(params, _fences(c, fence_rows), now, same)
    if early is not None:
        passed = {update.job_id for update in saved}
        early = tuple(
            link for link in early if (link.child_id if link.fired_state is not None else link.parent_id) in passed
        )
    times = c.times
    writes = save_writes(saved, now, times)
    pointers = queue_rows(writes.enqueue, now, await _kept_due(c, q, writes.enqueue), times)
    async with c.pipeline():  # every write of the batch in one round trip where the driver can
        if writes.updates:
            await c.write_rows(q, "job_update", writes.updates)
        if writes.states:
            await c.write_rows(q, "job_state_insert", writes.states)
        if writes.properties:
            await c.write_rows(q, "job_property_upsert", writes.properties)
        if writes.removed:
            await c.executemany(q["job_property_delete"], writes.removed)
        if pointers:
            await c.write_rows(q, "queue_upsert", pointers)
            await c.notify(q, [pointer["job_id"] for pointer in pointers])
        if writes.dequeued:
            await c.execute(q["queue_take"], {"job_ids": writes.dequeued})
        if writes.links:
            await c.executemany(q["continuation_insert"], writes.links)
        if saved:
            await c.notify_finished(q, saved)
        links = None
        if early is not None:
            if not early:  # nothing follows for the caller: the transaction may end here
                await c.commit_in_pipeline()
        elif writes.changed or writes.released:
            # one query for both: children waiting on changed jobs, fired parents of released ones
            # (after the writes above, in the same round trip where the driver pipelines)
            links = await c.fetch_later(
                q["continuation_links_many"],
                {"changed_ids": writes.changed or [0], "released_ids": writes.released or [0]},
            )
    found = early
    if found is None:
        found = continuation_links(await links()) if links is not None else ()
    return save_results(params, outcomes, found, now)


async def _finish_batch(c: Connection, q: Queries, params: Sequence[p.JobUpdate]) -> list[p.JobUpdated]:
    """Saves that only end runs (:func:`~hivemind_jobs.storage.rows.plain_finishes`) in one
    statement that checks the fences itself, locking the rows in id order as the fence read does
    (``job_finish_fenced``), which also returns the continuation links of the jobs; why a
    save did not pass its fence is read afterwards, only when one did not."""
    ids = [update.job_id for update in params]
    rows, link_rows = await c.finish_rows(q, finish_params(params, c.times.encode))
    saved = {row[0] for row in rows}
    now = c.dt(rows[0][1]) if rows else await clock_now(c, q)
    outcomes = [p.UpdateOutcome.SAVED] * len(params)
    if len(saved) < len(params):
        missing = sorted(set(ids) - saved)
        fence = _fences(c, await c.fetchall(q["job_fence_check_many"], {"job_ids": missing}))
        unsaved = [index for index, update in enumerate(params) if update.job_id not in saved]
        why, _ = fence_saves([params[index] for index in unsaved], fence, now, same)
        for index, found in zip(unsaved, why, strict=True):
            # read after the statement: whatever it shows now, this save was not written
            outcomes[index] = found if found is not p.UpdateOutcome.SAVED else p.UpdateOutcome.LOCK_LOST
    return save_results(params, outcomes, continuation_links(link_rows), now)


def _fences(c: Connection, rows: Sequence[Sequence[Any]]) -> dict[int, tuple[Any, Any, Any]]:
    """``job_fence_check_many`` rows as :func:`~hivemind_jobs.storage.rows.fence_saves` reads them."""
    return {job_id: (execution, holder, _opt(c, heartbeat)) for job_id, execution, holder, heartbeat, _ in rows}


async def job_lock_takeover(c: Connection, q: Queries, params: p.JobLockTakeover) -> list[int]:
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


async def job_lock_release(c: Connection, q: Queries, params: p.JobLockRelease) -> p.JobLockReleased:
    matched = await c.execute(q["job_lock_release"], {"job_id": params.job_id, "holder": params.holder})
    if matched != 1:
        return p.JobLockReleased(False)
    fired = continuation_links(await c.fetchall(q["continuation_fired_for_child"], {"child_id": params.job_id}))
    return p.JobLockReleased(True, fired)


async def job_heartbeat(c: Connection, q: Queries, params: p.JobHeartbeat) -> frozenset[int]:
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


async def job_search(c: Connection, q: Queries, params: p.JobSearch) -> list[p.JobRecord]:
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


async def job_queues(c: Connection, q: Queries, params: p.JobQueues) -> list[str]:
    compiled = compile_queues(c.dialect, _tables(q), params.prefix, params.limit)
    return [str(row[0]) for row in await c.fetchall(_sql(compiled), compiled.params)]


# ----------------------------------------------------------------------------- data, logs, actions


async def job_data_get(c: Connection, q: Queries, params: p.JobDataGet) -> str | None:
    rows = await c.fetchall(q["job_data_select"], {"job_id": params.job_id, "name": params.name})
    return None if not rows else str(rows[0][0])


async def job_state_histogram(c: Connection, q: Queries, params: p.JobStateHistogram) -> dict[int, int]:
    values = {"state": params.state, "since": c.times.encode(params.since), "bucket": params.bucket.total_seconds()}
    rows = await c.fetchall(q["job_state_histogram"], values)
    return {int(bucket): int(count) for bucket, count in rows}


async def job_state_by_queue(c: Connection, q: Queries, params: p.JobStateSince) -> dict[str, int]:
    values = {"state": params.state, "since": c.times.encode(params.since)}
    return {str(queue): int(count) for queue, count in await c.fetchall(q["job_state_by_queue"], values)}


async def job_state_counts_capped(c: Connection, q: Queries, params: int) -> dict[str, int]:
    counts = {}
    ((name,),) = await c.fetchall(q["job_state_next"], {"after": ""})
    while name is not None:
        ((count,),) = await c.fetchall(q["job_state_count_capped"], {"state": name, "cap": params})
        counts[str(name)] = int(count)
        ((name,),) = await c.fetchall(q["job_state_next"], {"after": name})
    return counts


async def job_data_list(c: Connection, q: Queries, params: p.JobDataList) -> list[p.JobDataItem]:
    rows = await c.fetchall(q["job_data_names"], {"job_id": params.job_id, "limit": params.limit})
    return [p.JobDataItem(str(name), int(size)) for name, size in rows]


async def job_data_set(c: Connection, q: Queries, params: p.JobDataSet) -> bool:
    if not await c.fetchall(q["job_lock_row"], {"job_id": params.job_id}):
        return False
    now = await clock_now(c, q)
    await c.execute(
        q["job_data_upsert"],
        {"job_id": params.job_id, "name": params.name, "value": params.value, "now": c.bind_dt(now)},
    )
    return True


async def job_log_insert(c: Connection, q: Queries, params: Sequence[p.JobLogRow]) -> int:
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


async def job_log_list(c: Connection, q: Queries, params: p.JobLogList) -> list[p.JobLogRecord]:
    rows = await c.fetchall(
        q["job_log_select"],
        {"job_id": params.job_id, "min_level": params.min_level, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        p.JobLogRecord(log_id, job_id, level, message, logger, exc_type, exc_message, trace, c.dt(created))
        for log_id, job_id, level, message, logger, exc_type, exc_message, trace, created in rows
    ]


async def job_action_insert(c: Connection, q: Queries, params: p.JobActionInsert) -> int:
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


async def job_action_list(c: Connection, q: Queries, params: p.JobActionList) -> list[p.JobActionRecord]:
    if not params.job_ids:
        return []
    rows = await c.fetchall(q["job_action_select"], {"job_ids": list(params.job_ids), "limit": params.limit})
    return [
        p.JobActionRecord(action_id, job_id, execution_id, kind, payload, requested_by, c.dt(created))
        for action_id, job_id, execution_id, kind, payload, requested_by, created in rows
    ]


async def job_action_delete(c: Connection, q: Queries, params: Sequence[int]) -> int:
    if not params:
        return 0
    return await c.execute(q["job_action_delete"], {"ids": list(params)})


async def continuation_list(c: Connection, q: Queries, params: int) -> list[p.ContinuationLink]:
    return list(continuation_links(await c.fetchall(q["continuation_list"], {"job_id": params})))


async def continuation_mark(c: Connection, q: Queries, params: Sequence[p.ContinuationMark]) -> None:
    for mark in params:
        key = {"parent_id": mark.parent_id, "child_id": mark.child_id}
        if mark.delete:
            await c.execute(q["continuation_delete"], key)
        else:
            await c.execute(q["continuation_fire"], {**key, "fired_state": mark.fired_state})


async def job_unique_claim(c: Connection, q: Queries, params: str) -> p.JobUniqueRecord:
    # The claim inserts the key's row or, when another transaction holds it, waits for that one to
    # end; the locking reads then see the latest committed rows.
    key = {"unique_key": params}
    await c.execute(q["job_unique_claim"], key)
    job_id, states, expires_at = (await c.fetchall(q["job_unique_select"], key))[0]
    if job_id is None:
        return p.JobUniqueRecord(None, (), None, None)
    rows = await c.fetchall(q["job_unique_job_state"], {"job_id": job_id})
    expires = c.dt(expires_at) if expires_at is not None else None
    return p.JobUniqueRecord(int(job_id), unique_states(states), expires, rows[0][0] if rows else None)


async def job_unique_set(c: Connection, q: Queries, params: p.JobUniqueSet) -> bool:
    return await c.execute(q["job_unique_set"], unique_set_params(params, c.bind_dt)) == 1


async def job_limit_set(c: Connection, q: Queries, params: Sequence[p.JobLimitSet]) -> int:
    if not params:
        return 0
    return await c.executemany(q["job_limit_set"], limit_set_params(params))


# ----------------------------------------------------------------------------- queue


async def queue_claim(c: Connection, q: Queries, params: p.QueueClaim) -> list[p.ClaimedJob]:
    """The claim's walk (:class:`~hivemind_jobs.storage.rows.ClaimWalk`), one read per queue group
    that locks its best due entries (skipping rows other transactions hold and jobs locked by
    someone); then delete them, lock their jobs for the owner and read the records, in one round
    trip where the driver pipelines. (The groups' queues are distinct, so deferring the deletes
    cannot claim an entry twice.)"""
    walk, now = await _claim_walk(c, q, params)
    if not walk.taken:
        return []
    claimed = walk.claimed
    writes: list[tuple[SQL, dict[str, Any]]] = [(q["queue_take"], {"job_ids": sorted(walk.taken)})]
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


async def _claim_walk(c: Connection, q: Queries, params: p.QueueClaim | p.QueueClaimStart) -> tuple[ClaimWalk, Any]:
    """The claim's walk, one read per queue group, and the database clock the first read gave."""
    walk = ClaimWalk(params, c.dt)
    now: Any = None
    while (queues := walk.next_queues()) is not None:
        rows = await c.claim_rows(q, {"queues": queues, "limit": walk.remaining})
        if rows:
            now = rows[0][9] if now is None else now  # the database clock, read by the claim
            walk.add(rows)
    if walk.limits:
        await _claim_limited(c, q, walk)
    return walk, now


async def _claim_limited(c: Connection, q: Queries, walk: ClaimWalk) -> None:
    """Keep the claimed jobs that fit their concurrency and rate limits (see
    :meth:`ClaimWalk.apply_limits`): lock each key's row (another colony's claim of the key waits
    until this transaction ends), then count its running jobs and recent starts, which every claim
    of the key before this one has committed; record the starts kept.

    A transaction waits only for keys above every key it holds (sorted), so waits cannot form a
    cycle; a key below one held (a second claim in one transaction) is taken only if free, and its
    jobs wait for a later claim if not."""
    concurrency, rate = walk.limit_keys()
    held = c.limit_keys_held
    highest = max(held) if held else ""
    wanted = sorted({*concurrency, *rate} - held)
    waits = [key for key in wanted if key > highest]
    tries = [key for key in wanted if key < highest]
    queries: list[tuple[SQL, dict[str, Any]]] = []
    if tries:
        queries.append((q["limit_try_lock"], {"keys": tries}))
    queries.append((q["clock_now"], {}))  # the clock after the locks: a statement of its own
    if concurrency:
        queries.append((q["limit_running"], {"keys": concurrency}))
    if rate:
        queries.append((q["limit_starts"], {"keys": rate}))
    results = await c.fetch_each(queries, writes=[(q["limit_lock"], {"key": key}) for key in waits])
    taken = {row[0] for row in results.pop(0)} if tries else set()
    c.limit_keys_held = held | set(waits) | taken
    now = c.dt(results[0][0][0])
    running = {key: int(count) for key, count in results[1]} if concurrency else {}
    starts: dict[str, list[datetime]] = {}
    for key, at in results[-1] if rate else ():
        starts.setdefault(key, []).append(c.dt(at))
    recorded = walk.apply_limits(running, starts, now, unavailable=frozenset(tries) - taken)
    if rate:
        async with c.pipeline():
            horizon = c.bind_dt(walk.rate_horizon(now))
            await c.execute(q["limit_start_prune"], {"keys": rate, "horizon": horizon})
            if recorded:
                at = c.bind_dt(now)
                await c.executemany(q["limit_start_insert"], [{"rate_key": key, "started_at": at} for key in recorded])


async def queue_claim_start(c: Connection, q: Queries, params: p.QueueClaimStart) -> list[p.ClaimedJob]:
    if c.starts_in_claim and params.templates is not None and params.adopt is not None:
        return await _claim_start_lean(c, q, params, params.templates(params.limit), params.adopt)
    return await _claim_start_general(c, q, params)


async def _claim_start_lean(
    c: Connection,
    q: Queries,
    params: p.QueueClaimStart,
    templates: p.StartTemplates,
    adopt: Callable[[p.ClaimedJob, p.JobRecord, p.ClaimStarted], bool],
) -> list[p.ClaimedJob]:
    """The claim and the starts of its jobs in one statement per queue group
    (``queue_claim_start_lean``, one round trip with the planner settings before it), the starts
    written as ``templates`` says; ``adopt`` builds each started job from its record. A job it
    cannot run is put back as it was before the statement, still locked (``queue_start_revert``).
    A group whose claim needs more (limits, a job not Enqueued) is left, with the groups after it,
    to the general path (:func:`_claim_start_general`), which ``params.start`` serves."""
    walk = ClaimWalk(params, c.dt)
    owner = params.owner
    values: dict[str, Any] = {
        "owner": owner,
        "execution_ids": templates.execution_ids,
        "fields_before": templates.fields_before,
        "fields_after": templates.fields_after,
        "offset": 0,
    }
    reverts: list[dict[str, Any]] = []
    # The claim's last operation of one queue group commits with its statement: the commit is sent
    # before its rows are read, so what it turns out to need (a job to put back, the general path)
    # is written in a new transaction on the same connection, which the caller commits.
    commit = c.last and len(params.groups) == 1
    while (queues := walk.next_queues()) is not None:
        statement = {**values, "queues": queues, "limit": walk.remaining}
        rows = await c.claim_start_rows(q, statement, commit=commit)
        if not rows:
            continue
        if rows[0][8]:  # nothing written: the general path claims from this group on
            c.committed = False
            # a job put back is failed by the caller in this transaction, which must stay open
            put_back = bool(reverts)
            if reverts:
                await c.revert_starts(q, reverts)
                reverts = []
            remaining = walk.remaining
            rest = dataclasses.replace(
                params, groups=walk.rest(queues), limit=remaining, ahead=min(remaining, params.ahead)
            )
            walk.claimed.extend(await _claim_start_general(c, q, rest, may_commit=not put_back))
            break
        now = c.dt(rows[0][7])
        for row in rows:
            walk.taken.append(row[0])
            number = row[6]
            if number is None:  # a stale entry: deleted, not claimed
                continue
            values["offset"] = number
            entry = p.ClaimedJob(row[0], row[1], row[2], row[3], c.dt(row[4]), c.dt(row[5]))
            entry.record = c.started_record(row, owner, now)
            walk.claimed.append(entry)
            if not adopt(entry, entry.record, p.ClaimStarted(number - 1, templates.execution_ids[number - 1], now)):
                reverts.append(lean_revert_params(row))
    if reverts:
        c.committed = False  # the caller fails them after the revert, in the transaction it commits
        await c.revert_starts(q, reverts)
    return walk.claimed


async def _claim_start_general(
    c: Connection, q: Queries, params: p.QueueClaimStart, *, may_commit: bool = True
) -> list[p.ClaimedJob]:
    """The claim; deleting its entries and reading their jobs' records in one round trip where the
    driver pipelines; then each job ``params.start`` starts saved with its new state and the lock
    (the claim read its row unlocked and holds it: no fence to read), in one more, which also
    commits when the claim is the transaction's last operation and started every job it claimed
    (nothing is left for the caller to write; ``may_commit`` False: the lean path before it left
    the caller a job to fail)."""
    walk, now = await _claim_walk(c, q, params)
    if not walk.taken:
        return []
    entries = walk.enqueued()
    take = (q["queue_take"], {"job_ids": sorted(walk.taken)})
    if not entries:
        await c.execute(*take)
        return walk.claimed
    ids = sorted(entry.job_id for entry in entries)
    claim = {"owner": params.owner, "now": now}
    updates = claim_starts(params, entries, await _records(c, q, ids, set(ids), writes=[take], claim=claim))
    async with c.pipeline():
        if updates:
            jobs, states = start_writes(updates, claim, c.times.encode)
            await c.write_rows(q, "queue_start_claimed", jobs)
            await c.write_rows(q, "job_state_insert", states)
        if len(updates) < len(ids):  # claimed, not started: locked all the same
            started = {update.job_id for update in updates}
            waiting = [job_id for job_id in ids if job_id not in started]
            await c.execute(q["queue_lock_claimed"], {"job_ids": waiting, **claim})
        elif may_commit:
            await c.commit_in_pipeline()
    return walk.claimed


async def queue_stats(c: Connection, q: Queries) -> list[p.QueueStat]:
    now = await clock_now(c, q)
    rows = await c.fetchall(q["queue_stats"], {"now": c.bind_dt(now)})
    stats = []
    for queue, priority, ready, delayed, first in rows:
        due = c.dt(first)
        stats.append(p.QueueStat(queue, int(priority), int(ready or 0), int(delayed or 0), due if due <= now else None))
    return stats


async def queue_pause(c: Connection, q: Queries, params: p.QueuePause) -> bool:
    return await c.insert_if_absent(q["queue_pause_insert"], {"queue": params.queue, "reason": params.reason})


async def queue_resume(c: Connection, q: Queries, params: str) -> bool:
    return await c.execute(q["queue_pause_delete"], {"queue": params}) == 1


async def queue_pause_list(c: Connection, q: Queries) -> list[p.QueuePauseRecord]:
    return [
        p.QueuePauseRecord(queue, c.dt(paused_at), reason)
        for queue, paused_at, reason in await c.fetchall(q["queue_pause_select_all"])
    ]


# ----------------------------------------------------------------------------- colonies


def _colony(c: Connection, row: Sequence[Any]) -> p.ColonyRecord:
    colony_id, name, host, pid, status, state, started_at, heartbeat, progress = row
    return p.ColonyRecord(
        colony_id, name, host, int(pid), status, state, c.dt(started_at), c.dt(heartbeat), _opt(c, progress)
    )


async def colony_upsert(c: Connection, q: Queries, params: p.ColonyUpsert) -> p.ColonyRecord:
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


async def colony_get(c: Connection, q: Queries, params: str) -> p.ColonyRecord | None:
    rows = await c.fetchall(q["colony_select"], {"id": params})
    return _colony(c, rows[0]) if rows else None


async def colony_list(c: Connection, q: Queries) -> list[p.ColonyRecord]:
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


async def daemon_log_insert(c: Connection, q: Queries, params: Sequence[p.DaemonLogRow]) -> int:
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


async def daemon_log_list(c: Connection, q: Queries, params: p.DaemonLogList) -> list[p.DaemonLogRecord]:
    rows = await c.fetchall(
        q["daemon_log_select"],
        {"colony_id": params.colony_id, "daemon": params.daemon, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        p.DaemonLogRecord(log_id, colony_id, daemon, level, message, c.dt(created))
        for log_id, colony_id, daemon, level, message, created in rows
    ]


# ----------------------------------------------------------------------------- recurring jobs


def _recurring(c: Connection, row: Sequence[Any]) -> p.RecurringRecord:
    rid, definition, state_name, reason, next_run, job_id, stats, version, created, modified = row
    return p.RecurringRecord(
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


async def recurring_get(c: Connection, q: Queries, params: p.RecurringGet) -> p.RecurringRecord | None:
    query = "recurring_select_for_update" if params.for_update else "recurring_select"
    rows = await c.fetchall(q[query], {"id": params.id})
    return _recurring(c, rows[0]) if rows else None


async def recurring_list(c: Connection, q: Queries, params: p.RecurringList) -> list[p.RecurringRecord]:
    values: dict[str, Any] = {"after_id": params.after_id, "limit": params.limit}
    if params.due:
        values["now"] = c.bind_dt(await clock_now(c, q))
        query = "recurring_select_due"
    else:
        query = "recurring_select_running" if params.running else "recurring_select_page"
    return [_recurring(c, row) for row in await c.fetchall(q[query], values)]


async def recurring_write(c: Connection, q: Queries, params: p.RecurringWrite) -> bool:
    values = recurring_write_params(params, c.bind_dt(await clock_now(c, q)), c.bind_dt)
    if params.expected_version is None:
        return await c.insert_if_absent(q["recurring_insert"], values)
    return await c.execute(q["recurring_update"], values) == 1


async def recurring_delete(c: Connection, q: Queries, params: str) -> bool:
    await c.execute(q["recurring_event_delete_all"], {"id": params})
    return await c.execute(q["recurring_delete"], {"id": params}) == 1


async def occurrence_insert(c: Connection, q: Queries, params: p.OccurrenceInsert) -> bool:
    values = occurrence_params(params, c.bind_dt(await clock_now(c, q)), c.bind_dt)
    return await c.insert_if_absent(q["occurrence_insert"], values)


async def recurring_event_insert(c: Connection, q: Queries, params: Sequence[p.RecurringEventRow]) -> int:
    if not params:
        return 0
    return await c.executemany(q["recurring_event_insert"], event_params(params, c.bind_dt(await clock_now(c, q))))


async def recurring_event_list(c: Connection, q: Queries, params: p.RecurringEventList) -> list[p.RecurringEventRecord]:
    rows = await c.fetchall(q["recurring_event_select"], event_list_params(params))
    return [
        p.RecurringEventRecord(int(event_id), rid, kind, name, message, fields, c.dt(created))
        for event_id, rid, kind, name, message, fields, created in rows
    ]


async def recurring_event_prune(c: Connection, q: Queries, params: p.RecurringEventPrune) -> int:
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


async def job_purge(c: Connection, q: Queries, params: p.JobPurge) -> int:
    """Delete up to ``params.limit`` jobs finished longer than ``params.older_than`` ago, and the
    unique keys they held whose period has passed."""
    now = await clock_now(c, q)
    cutoff = c.bind_dt(now - params.older_than)
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
    purged = await c.execute(q["job_purge"], {"ids": sorted(ids)})
    await c.execute(q["job_unique_release_purged"], {"ids": sorted(ids), "now": c.bind_dt(now)})
    return purged


async def log_purge(c: Connection, q: Queries, params: p.LogPurge) -> int:
    query = purge_query(params)
    cutoff = c.bind_dt(await clock_now(c, q) - params.older_than)
    return await c.execute(q[query], {"cutoff": cutoff, "limit": params.limit})


async def lease_acquire(c: Connection, q: Queries, params: p.LeaseAcquire) -> bool:
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


# ----------------------------------------------------------------------------- bound


class ServerOperations(BoundOperations):
    """Every operation, bound to :class:`~hivemind_jobs.storage.server.base.ServerTransaction`
    (which awaits them on its pooled connection, retrying a first operation that may run again)."""

    job_insert = async_operation(job_insert, copy=True)
    job_get = async_operation(job_get)
    job_get_many = async_operation(job_get_many, copy=True)
    job_update = async_operation(job_update)
    job_update_many = async_operation(job_update_many, copy=True)
    job_lock_release = async_operation(job_lock_release)
    job_heartbeat = async_operation(job_heartbeat)
    job_state_counts = async_operation(job_state_counts)
    job_search = async_operation(job_search)
    job_count = async_operation(job_count)
    job_queues = async_operation(job_queues)
    job_data_get = async_operation(job_data_get)
    job_data_list = async_operation(job_data_list)
    job_state_histogram = async_operation(job_state_histogram)
    job_state_by_queue = async_operation(job_state_by_queue)
    job_state_counts_capped = async_operation(job_state_counts_capped)
    job_data_set = async_operation(job_data_set)
    job_log_insert = async_operation(job_log_insert, copy=True)
    job_log_list = async_operation(job_log_list)
    job_action_insert = async_operation(job_action_insert)
    job_action_list = async_operation(job_action_list)
    job_action_delete = async_operation(job_action_delete, copy=True)
    continuation_list = async_operation(continuation_list)
    continuation_mark = async_operation(continuation_mark, copy=True)
    job_unique_claim = async_operation(job_unique_claim)
    job_unique_set = async_operation(job_unique_set)
    job_limit_set = async_operation(job_limit_set)
    queue_claim = async_operation(queue_claim)
    queue_claim_start = async_operation(queue_claim_start)
    queue_stats = async_operation(queue_stats)
    queue_pause = async_operation(queue_pause)
    queue_resume = async_operation(queue_resume)
    queue_pause_list = async_operation(queue_pause_list)
    colony_upsert = async_operation(colony_upsert)
    colony_get = async_operation(colony_get)
    colony_list = async_operation(colony_list)
    colony_delete = async_operation(colony_delete, copy=True)
    colony_delete_stale = async_operation(colony_delete_stale)
    daemon_log_insert = async_operation(daemon_log_insert, copy=True)
    daemon_log_list = async_operation(daemon_log_list)
    recurring_get = async_operation(recurring_get)
    recurring_list = async_operation(recurring_list)
    recurring_write = async_operation(recurring_write)
    recurring_delete = async_operation(recurring_delete)
    occurrence_insert = async_operation(occurrence_insert)
    recurring_event_insert = async_operation(recurring_event_insert, copy=True)
    recurring_event_list = async_operation(recurring_event_list)
    recurring_event_prune = async_operation(recurring_event_prune)
    job_lock_takeover = async_operation(job_lock_takeover)
    job_purge = async_operation(job_purge)
    log_purge = async_operation(log_purge)
    lease_acquire = async_operation(lease_acquire)
    clock_now = async_operation(clock_now)


if TYPE_CHECKING:
    _every_operation_with_its_types: type[Operations] = ServerOperations
