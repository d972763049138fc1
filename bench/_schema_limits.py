"""The raw-SQL limits of HiveMind's own schema: the rows HiveMind writes, by hand, in the fewest round trips.

``throughput.py`` measures HiveMind next to ``raw_limit_per_s``, the engine's limit for the same work
on a one-table schema. These are the limits of the same work **on HiveMind's tables, writing the rows
HiveMind must write** (every state change a history row, every finish fenced), with driver-level SQL
only and the fewest statements and round trips a hand-written program could use: what no library on
this schema can beat. HiveMind only creates the tables (and, for the processing limit, the jobs).

- ``schema_limit``: --n jobs created by ``hive.jobs.create_many`` (no-op, default queue), claimed
  ``batch`` at a time and finished, per job: the queue entry taken, the job row started (new execution
  id, Executing, locked), an Executing history row; then the job finished (Succeeded, a new execution
  id, the lock released; fenced on the lock holder, the execution id and the lock's freshness) and a
  Succeeded history row. PostgreSQL: one data-modifying statement to claim and start, one to finish,
  each in autocommit, from ``workers`` connections. MariaDB: claim and start in one transaction of
  two round trips (the SKIP LOCKED read, then one multi-statement script), finish in one script, from
  ``workers`` connections. SQLite: one transaction per step, each in one hop to a writer thread.
- ``schema_create_one``: one job per transaction, one after the other: the job row, its Created and
  Enqueued history rows, its queue entry (and the NOTIFY on PostgreSQL): one statement (PostgreSQL),
  one multi-statement script (MariaDB), on the calling thread (SQLite: as HiveMind runs a
  one-operation transaction while the file's write lock is free).
- ``schema_create_bulk``: the same rows for batches of 1,000 jobs, one statement per table (SQLite:
  one hop to a writer thread each, as HiveMind sends batches of more than a few jobs).

On MariaDB both creates write the history rows and the queue entries of the jobs just inserted
without foreign-key checks (``SET STATEMENT foreign_key_checks = 0 FOR``), as HiveMind does: their
job is a row of the same transaction, so the check could not fail. A batch's history rows and
queue entries are ``INSERT ... SELECT`` from its job rows (their ids' range), as HiveMind writes a
batch created alike.

Every function checks the tables afterwards (jobs, history rows, queue entries) and raises if the
work was not done in full.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

PREFIX = "hm_main_"
QUEUE = "global"
PRIORITY = 2
INVOCATION = '{{"v":1,"target":"_jobs:noop","async":true,"args":{{"number":{i}}}}}'
#: the called function, as HiveMind writes it with each job (searchable: an index of its own)
FUNCTION = "_jobs:noop"
EXECUTING_FIELDS = json.dumps(
    {"colony": "bench", "swarm": "main", "drone": "main.drone-1", "due_at": {"$hm": "datetime", "v": "x" * 32}},
    separators=(",", ":"),
)
SUCCEEDED_FIELDS = json.dumps(
    {
        "duration": {"$hm": "timedelta", "v": [0, 0, 199]},
        "overhead": {"$hm": "timedelta", "v": [0, 0, 265]},
        "lead_time": {"$hm": "timedelta", "v": [0, 0, 4363]},
    },
    separators=(",", ":"),
)
OWNER = "bench-colony"
LOCK_SECONDS = 60
CHUNK = 1000


class WorkNotDone(AssertionError):
    """The raw loop's tables do not hold the rows it should have written."""


def check(counts: dict[str, int], expected: dict[str, int], what: str) -> None:
    if counts != expected:
        raise WorkNotDone(f"{what}: the tables hold {counts}, expected {expected}")


async def workers_until_empty(work: Callable[[int], Any], workers: int) -> tuple[int, float]:
    started = time.perf_counter()
    counts = await asyncio.gather(*(work(i) for i in range(workers)))
    return sum(counts), time.perf_counter() - started


# ---------------------------------------------------------------- SQLite


def _micros() -> int:
    return time.time_ns() // 1000


def sqlite_connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def sqlite_counts(connection: sqlite3.Connection) -> dict[str, int]:
    one = connection.execute
    return {
        "succeeded": one(f"SELECT COUNT(*) FROM {PREFIX}job WHERE state_name = 'Succeeded'").fetchone()[0],
        "enqueued": one(f"SELECT COUNT(*) FROM {PREFIX}job WHERE state_name = 'Enqueued'").fetchone()[0],
        "history": one(f"SELECT COUNT(*) FROM {PREFIX}job_state").fetchone()[0],
        "queue": one(f"SELECT COUNT(*) FROM {PREFIX}queue").fetchone()[0],
    }


async def sqlite_schema_limit(path: str, hop: Any, n: int, batch: int) -> float:
    """Claim and start ``batch`` jobs in one transaction, finish them in another (one hop each)."""
    connection = sqlite_connect(path)
    j, s, q = f"{PREFIX}job", f"{PREFIX}job_state", f"{PREFIX}queue"
    pick = (
        f"SELECT q.job_id FROM {q} AS q JOIN {j} AS j ON j.id = q.job_id AND j.locked_by IS NULL "
        f"WHERE q.queue = ? AND q.execute_after <= ? ORDER BY q.priority, q.execute_after, q.job_id LIMIT ?"
    )
    state = f"INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields) VALUES (?, ?, ?, ?, NULL, ?)"

    def claim() -> list[tuple[int, str, int]]:
        now = _micros()
        connection.execute("BEGIN IMMEDIATE")
        ids = [row[0] for row in connection.execute(pick, (QUEUE, now, batch))]
        if not ids:
            connection.execute("COMMIT")
            return []
        marks = ",".join("?" * len(ids))
        connection.execute(f"DELETE FROM {q} WHERE job_id IN ({marks})", ids)
        started = connection.execute(
            f"UPDATE {j} SET execution_id = lower(hex(randomblob(16))), state_name = 'Executing', "
            f"state_sequence = state_sequence + 1, state_elected_at = ?, locked_by = ?, locked_at = ?, "
            f"lock_heartbeat = ?, modified_at = ? WHERE id IN ({marks}) "
            f"RETURNING id, execution_id, state_sequence, invocation",
            (now, OWNER, now, now, now, *ids),
        ).fetchall()
        connection.executemany(state, [(job, seq, "Executing", now, EXECUTING_FIELDS) for job, _, seq, _ in started])
        connection.execute("COMMIT")
        return [(job, execution, seq) for job, execution, seq, _ in started]

    def finish(started: list[tuple[int, str, int]]) -> int:
        now = _micros()
        pairs = ",".join("(?, ?)" for _ in started)
        keys = [value for job, execution, _ in started for value in (job, execution)]
        connection.execute("BEGIN IMMEDIATE")
        done = connection.execute(
            f"UPDATE {j} SET execution_id = lower(hex(randomblob(16))), state_name = 'Succeeded', "
            f"state_sequence = state_sequence + 1, state_elected_at = ?, locked_by = NULL, locked_at = NULL, "
            f"lock_heartbeat = NULL, modified_at = ? "
            f"WHERE (id, execution_id) IN (VALUES {pairs}) AND locked_by = ? AND lock_heartbeat > ? "
            f"RETURNING id, state_sequence",
            (now, now, *keys, OWNER, now - LOCK_SECONDS * 1_000_000),
        ).fetchall()
        connection.executemany(state, [(job, seq, "Succeeded", now, SUCCEEDED_FIELDS) for job, seq in done])
        connection.execute("COMMIT")
        return len(done)

    count = 0
    started_at = time.perf_counter()
    while started := await hop.run(claim):
        # --- the no-op jobs run here ---
        count += await hop.run(lambda started=started: finish(started))
    elapsed = time.perf_counter() - started_at
    counts = sqlite_counts(connection)
    connection.close()
    check(counts, {"succeeded": n, "enqueued": 0, "history": 4 * n, "queue": 0}, "schema_limit (SQLite)")
    return count / elapsed


def _sqlite_insert(connection: sqlite3.Connection, numbers: range) -> list[int]:
    j, s, q = f"{PREFIX}job", f"{PREFIX}job_state", f"{PREFIX}queue"
    now = _micros()
    executions = [str(uuid.uuid4()) for _ in numbers]
    marks = ",".join(f"(?, ?, ?, 'Enqueued', 1, ?, ?, '[]', '{FUNCTION}', ?, ?)" for _ in numbers)
    values = [
        value
        for i, execution in zip(numbers, executions, strict=True)
        for value in (QUEUE, PRIORITY, execution, now, INVOCATION.format(i=i), now, now)
    ]
    connection.execute("BEGIN IMMEDIATE")
    ids = [
        row[0]
        for row in connection.execute(
            f"INSERT INTO {j} (queue, priority, execution_id, state_name, state_sequence, state_elected_at, "
            f"invocation, middleware, function_name, created_at, modified_at) VALUES {marks} RETURNING id",
            values,
        )
    ]
    connection.executemany(
        f"INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields) VALUES (?, ?, ?, ?, NULL, '{{}}')",
        [(job, seq, name, now) for job in ids for seq, name in ((0, "Created"), (1, "Enqueued"))],
    )
    connection.executemany(
        f"INSERT INTO {q} (job_id, queue, priority, execute_after, execution_id, enqueued_at) "
        f"VALUES (?, ?, ?, ?, ?, ?)",
        [(job, QUEUE, PRIORITY, now, execution, now) for job, execution in zip(ids, executions, strict=True)],
    )
    connection.execute("COMMIT")
    return ids


async def sqlite_schema_create(path: str, hop: Any, n: int, chunk: int) -> float:
    """Create ``n`` jobs, ``chunk`` per transaction: one by one on this thread, batches each in one
    hop to the writer thread."""
    connection = sqlite_connect(path)
    started = time.perf_counter()
    for start in range(0, n, chunk):
        numbers = range(start, min(n, start + chunk))
        if chunk == 1:
            _sqlite_insert(connection, numbers)
            await asyncio.sleep(0)  # as an awaited create gives the event loop a turn
        else:
            await hop.run(lambda numbers=numbers: _sqlite_insert(connection, numbers))
    elapsed = time.perf_counter() - started
    counts = sqlite_counts(connection)
    connection.close()
    check(counts, {"succeeded": 0, "enqueued": n, "history": 2 * n, "queue": n}, "schema_create (SQLite)")
    return n / elapsed


# ---------------------------------------------------------------- PostgreSQL


def _pg_tables(schema: str) -> tuple[str, str, str]:
    return tuple(f'"{schema}"."{PREFIX}{name}"' for name in ("job", "job_state", "queue"))  # type: ignore[return-value]


async def pg_counts(connection: Any, schema: str) -> dict[str, int]:
    j, s, q = _pg_tables(schema)
    row = await (
        await connection.execute(
            f"SELECT (SELECT COUNT(*) FROM {j} WHERE state_name = 'Succeeded'), "
            f"(SELECT COUNT(*) FROM {j} WHERE state_name = 'Enqueued'), "
            f"(SELECT COUNT(*) FROM {s}), (SELECT COUNT(*) FROM {q})"
        )
    ).fetchone()
    return dict(zip(("succeeded", "enqueued", "history", "queue"), map(int, row), strict=True))


async def pg_schema_limit(
    conninfo: str, schema: str, n: int, batch: int, workers: int, done: Callable[[], Any] | None = None
) -> float:
    """One statement claims and starts ``batch`` jobs, one finishes them, each in autocommit.
    ``done`` is called when the work is done, while the connections are still open (a server
    process's CPU is read while it lives)."""
    import psycopg

    j, s, q = _pg_tables(schema)
    claim = f"""
        WITH picked AS (
            SELECT q.job_id FROM {q} AS q JOIN {j} AS j ON j.id = q.job_id AND j.locked_by IS NULL
            WHERE q.queue = %(queue)s AND q.execute_after <= statement_timestamp()
            ORDER BY q.priority, q.execute_after, q.job_id LIMIT %(limit)s
            FOR UPDATE OF q, j SKIP LOCKED
        ), taken AS (
            DELETE FROM {q} AS q USING picked WHERE q.job_id = picked.job_id RETURNING q.job_id
        ), started AS (
            UPDATE {j} AS j SET execution_id = CAST(gen_random_uuid() AS TEXT), state_name = 'Executing',
                state_sequence = j.state_sequence + 1, state_elected_at = statement_timestamp(),
                locked_by = %(owner)s, locked_at = statement_timestamp(), lock_heartbeat = statement_timestamp(),
                modified_at = statement_timestamp()
            FROM taken WHERE j.id = taken.job_id
            RETURNING j.id, j.execution_id, j.state_sequence, j.invocation
        ), history AS (
            INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields)
            SELECT id, state_sequence, 'Executing', statement_timestamp(), NULL, %(fields)s FROM started
        )
        SELECT id, execution_id, invocation FROM started"""
    finish = f"""
        WITH done AS (
            UPDATE {j} AS j SET execution_id = CAST(gen_random_uuid() AS TEXT), state_name = 'Succeeded',
                state_sequence = j.state_sequence + 1, state_elected_at = statement_timestamp(),
                locked_by = NULL, locked_at = NULL, lock_heartbeat = NULL, modified_at = statement_timestamp()
            FROM unnest(CAST(%(ids)s AS BIGINT[]), CAST(%(executions)s AS TEXT[])) AS u (id, execution_id)
            WHERE j.id = u.id AND j.execution_id = u.execution_id AND j.locked_by = %(owner)s
              AND j.lock_heartbeat > statement_timestamp() - make_interval(secs => %(lock)s)
            RETURNING j.id, j.state_sequence
        )
        INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields)
        SELECT id, state_sequence, 'Succeeded', statement_timestamp(), NULL, %(fields)s FROM done"""
    connections = [await psycopg.AsyncConnection.connect(conninfo, autocommit=True) for _ in range(workers)]
    for connection in connections:  # walk the claim index in order (fresh tables have no statistics)
        await connection.execute("SET enable_bitmapscan = off")
        await connection.execute("SET enable_sort = off")
    claim_params = {"queue": QUEUE, "limit": batch, "owner": OWNER, "fields": EXECUTING_FIELDS}

    async def work(index: int) -> int:
        connection, count = connections[index], 0
        while True:
            rows = await (await connection.execute(claim, claim_params)).fetchall()
            if not rows:
                return count
            # --- the no-op jobs run here ---
            ids, executions = [row[0] for row in rows], [row[1] for row in rows]
            finished = await connection.execute(
                finish,
                {"ids": ids, "executions": executions, "owner": OWNER, "lock": LOCK_SECONDS}
                | {"fields": SUCCEEDED_FIELDS},
            )
            if finished.rowcount != len(ids):
                raise WorkNotDone(f"schema_limit (PostgreSQL): {finished.rowcount} of {len(ids)} jobs finished")
            count += len(ids)

    try:
        count, elapsed = await workers_until_empty(work, workers)
        if done is not None:
            done()
        counts = await pg_counts(connections[0], schema)
    finally:
        for connection in connections:
            await connection.close()
    check(counts, {"succeeded": n, "enqueued": 0, "history": 4 * n, "queue": 0}, "schema_limit (PostgreSQL)")
    return count / elapsed


async def pg_schema_create(conninfo: str, schema: str, channel: str, n: int, chunk: int) -> float:
    """One statement (autocommit) writes ``chunk`` jobs with their history rows, queue entries and NOTIFY."""
    import psycopg

    j, s, q = _pg_tables(schema)
    insert = f"""
        WITH job AS (
            INSERT INTO {j} (queue, priority, execution_id, state_name, state_sequence, state_elected_at,
                             invocation, middleware, function_name, created_at, modified_at)
            SELECT %(queue)s, %(priority)s, r.execution_id, 'Enqueued', 1, statement_timestamp(), r.invocation, '[]',
                   '{FUNCTION}', statement_timestamp(), statement_timestamp()
            FROM unnest(CAST(%(executions)s AS TEXT[]), CAST(%(invocations)s AS TEXT[])) AS r (execution_id, invocation)
            RETURNING id, execution_id
        ), history AS (
            INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields)
            SELECT job.id, v.sequence, v.name, statement_timestamp(), NULL, '{{}}'
            FROM job CROSS JOIN (VALUES (0, 'Created'), (1, 'Enqueued')) AS v (sequence, name)
        ), entry AS (
            INSERT INTO {q} (job_id, queue, priority, execute_after, execution_id, enqueued_at)
            SELECT id, %(queue)s, %(priority)s, statement_timestamp(), execution_id, statement_timestamp() FROM job
        )
        SELECT pg_notify(%(channel)s, %(queue)s), (SELECT COUNT(*) FROM job)"""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        started = time.perf_counter()
        for start in range(0, n, chunk):
            numbers = range(start, min(n, start + chunk))
            params = {
                "queue": QUEUE,
                "priority": PRIORITY,
                "channel": channel,
                "executions": [str(uuid.uuid4()) for _ in numbers],
                "invocations": [INVOCATION.format(i=i) for i in numbers],
            }
            row = await (await connection.execute(insert, params)).fetchone()
            if row is None or row[1] != len(numbers):
                raise WorkNotDone(f"schema_create (PostgreSQL): the statement wrote {row}")
        elapsed = time.perf_counter() - started
        counts = await pg_counts(connection, schema)
    check(counts, {"succeeded": 0, "enqueued": n, "history": 2 * n, "queue": n}, "schema_create (PostgreSQL)")
    return n / elapsed


# ---------------------------------------------------------------- MySQL / MariaDB


def _my_tables(database: str) -> tuple[str, str, str]:
    return tuple(f"`{database}`.`{PREFIX}{name}`" for name in ("job", "job_state", "queue"))  # type: ignore[return-value]


async def _my_connect(connect_args: dict[str, Any], database: str) -> Any:
    import aiomysql
    from pymysql.constants import CLIENT

    return await aiomysql.connect(
        **connect_args,
        db=database,
        autocommit=True,
        client_flag=CLIENT.MULTI_STATEMENTS,
        init_command="SET SESSION tx_isolation = 'READ-COMMITTED', time_zone = '+00:00'",
    )


async def _script(cursor: Any, sql: str) -> list[list[tuple[Any, ...]]]:
    """Run a multi-statement script in one round trip; the rows of every result set."""
    await cursor.execute(sql)
    results = [list(await cursor.fetchall())]
    while await cursor.nextset():
        results.append(list(await cursor.fetchall()))
    return results


#: InnoDB's deadlock and lock wait timeout errors: the transaction was rolled back, run it again
RETRYABLE = (1213, 1205)


async def _again_on_deadlock(cursor: Any, sql: str) -> list[list[tuple[Any, ...]]]:
    """``_script`` for a script that holds a whole transaction, run again when InnoDB rolled it back."""
    import pymysql

    for attempt in range(20):
        try:
            return await _script(cursor, sql)
        except pymysql.err.OperationalError as error:
            if error.args[0] not in RETRYABLE or attempt == 19:
                raise
            while await cursor.nextset():  # drain what the failed script left
                pass
            await cursor.execute("ROLLBACK")
    raise AssertionError("unreachable")


async def my_counts(cursor: Any, database: str) -> dict[str, int]:
    j, s, q = _my_tables(database)
    await cursor.execute(
        f"SELECT (SELECT COUNT(*) FROM {j} WHERE state_name = 'Succeeded'), "
        f"(SELECT COUNT(*) FROM {j} WHERE state_name = 'Enqueued'), (SELECT COUNT(*) FROM {s}), "
        f"(SELECT COUNT(*) FROM {q})"
    )
    row = await cursor.fetchone()
    return dict(zip(("succeeded", "enqueued", "history", "queue"), map(int, row), strict=True))


async def mysql_schema_limit(
    connect_args: dict[str, Any], database: str, n: int, batch: int, workers: int, done: Callable[[], Any] | None = None
) -> float:
    """Claim (a SKIP LOCKED read, then one script that starts the jobs and commits); finish in one script.
    A transaction InnoDB rolls back (deadlock) runs again. ``done``: as in :func:`pg_schema_limit`."""
    import pymysql

    j, s, q = _my_tables(database)
    pick = (
        f"SELECT q.job_id FROM {q} AS q JOIN {j} AS j ON j.id = q.job_id AND j.locked_by IS NULL "
        f"WHERE q.queue = '{QUEUE}' AND q.execute_after <= UTC_TIMESTAMP(6) "
        f"ORDER BY q.priority, q.execute_after, q.job_id LIMIT {batch} FOR UPDATE SKIP LOCKED"
    )
    connections = [await _my_connect(connect_args, database) for _ in range(workers)]

    async def work(index: int) -> int:
        connection, count = connections[index], 0
        executing, succeeded, owner = map(connection.escape, (EXECUTING_FIELDS, SUCCEEDED_FIELDS, OWNER))
        async with connection.cursor() as cursor:
            while True:
                [_, picked] = await _again_on_deadlock(cursor, f"BEGIN; {pick}")
                if not picked:
                    await cursor.execute("COMMIT")
                    return count
                ids = ",".join(str(row[0]) for row in picked)
                try:
                    *_, started, _ = await _script(
                        cursor,
                        f"SET @now = UTC_TIMESTAMP(6); DELETE FROM {q} WHERE job_id IN ({ids}); "
                        f"UPDATE {j} SET execution_id = UUID(), state_name = 'Executing', "
                        f"state_sequence = state_sequence + 1, state_elected_at = @now, locked_by = {owner}, "
                        f"locked_at = @now, lock_heartbeat = @now, modified_at = @now WHERE id IN ({ids}); "
                        f"INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields) "
                        f"SELECT id, state_sequence, 'Executing', @now, NULL, {executing} FROM {j} "
                        f"WHERE id IN ({ids}); "
                        f"SELECT id, execution_id, invocation FROM {j} WHERE id IN ({ids}); COMMIT",
                    )
                except pymysql.err.OperationalError as error:
                    if error.args[0] not in RETRYABLE:
                        raise
                    while await cursor.nextset():
                        pass
                    await cursor.execute("ROLLBACK")  # rolled back: its jobs are claimable again
                    continue
                # --- the no-op jobs run here ---
                keys = ",".join(f"({job}, {connection.escape(execution)})" for job, execution, _ in started)
                [*_, (finished,), _] = await _again_on_deadlock(
                    cursor,
                    f"BEGIN; SET @now = UTC_TIMESTAMP(6); "
                    f"UPDATE {j} SET execution_id = UUID(), state_name = 'Succeeded', "
                    f"state_sequence = state_sequence + 1, state_elected_at = @now, locked_by = NULL, "
                    f"locked_at = NULL, lock_heartbeat = NULL, modified_at = @now "
                    f"WHERE id IN ({ids}) AND (id, execution_id) IN ({keys}) AND locked_by = {owner} "
                    f"AND lock_heartbeat > @now - INTERVAL {LOCK_SECONDS} SECOND; "
                    f"INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields) "
                    f"SELECT id, state_sequence, 'Succeeded', @now, NULL, {succeeded} FROM {j} "
                    f"WHERE id IN ({ids}) AND state_name = 'Succeeded' AND modified_at = @now; "
                    f"SELECT ROW_COUNT(); COMMIT",
                )
                if finished[0] != len(picked):
                    raise WorkNotDone(f"schema_limit (MySQL): {finished[0]} of {len(picked)} jobs finished")
                count += len(picked)

    try:
        count, elapsed = await workers_until_empty(work, workers)
        if done is not None:
            done()
        async with connections[0].cursor() as cursor:
            counts = await my_counts(cursor, database)
    finally:
        for connection in connections:
            connection.close()
    check(counts, {"succeeded": n, "enqueued": 0, "history": 4 * n, "queue": 0}, "schema_limit (MySQL)")
    return count / elapsed


async def mysql_schema_create(connect_args: dict[str, Any], database: str, n: int, chunk: int) -> float:
    """One job: one script (job, history rows, queue entry, COMMIT). A batch: one multi-row INSERT of the
    jobs (InnoDB gives a multi-row INSERT consecutive ids), then one script for the other rows."""
    j, s, q = _my_tables(database)
    connection = await _my_connect(connect_args, database)
    own = "SET STATEMENT foreign_key_checks = 0 FOR " if "mariadb" in connection.get_server_info().lower() else ""
    columns = (
        f"INSERT INTO {j} (queue, priority, execution_id, state_name, state_sequence, state_elected_at, "
        f"invocation, middleware, function_name, created_at, modified_at) VALUES "
    )
    try:
        async with connection.cursor() as cursor:
            started = time.perf_counter()
            for start in range(0, n, chunk):
                numbers = range(start, min(n, start + chunk))
                executions = [connection.escape(str(uuid.uuid4())) for _ in numbers]
                rows = ",".join(
                    f"('{QUEUE}', {PRIORITY}, {execution}, 'Enqueued', 1, @now, "
                    f"{connection.escape(INVOCATION.format(i=i))}, '[]', '{FUNCTION}', @now, @now)"
                    for i, execution in zip(numbers, executions, strict=True)
                )
                if chunk == 1:
                    [execution] = executions
                    await _script(
                        cursor,
                        f"SET @now = UTC_TIMESTAMP(6); BEGIN; {columns}{rows}; SET @id = LAST_INSERT_ID(); "
                        f"{own}INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields) "
                        f"VALUES (@id, 0, 'Created', @now, NULL, '{{}}'), (@id, 1, 'Enqueued', @now, NULL, '{{}}'); "
                        f"{own}INSERT INTO {q} (job_id, queue, priority, execute_after, execution_id, enqueued_at) "
                        f"VALUES (@id, '{QUEUE}', {PRIORITY}, @now, {execution}, @now); COMMIT",
                    )
                    continue
                *_, [(first,)] = await _script(
                    cursor, f"SET @now = UTC_TIMESTAMP(6); BEGIN; {columns}{rows}; SELECT LAST_INSERT_ID()"
                )
                # the history rows and queue entries read back from the job rows just inserted
                where = f"FROM {j} AS j WHERE j.id BETWEEN {first} AND {first + len(numbers) - 1}"
                await _script(
                    cursor,
                    f"{own}INSERT INTO {s} (job_id, sequence, name, elected_at, reason, fields) "
                    f"SELECT j.id, 0, 'Created', @now, NULL, '{{}}' {where} "
                    f"UNION ALL SELECT j.id, 1, 'Enqueued', @now, NULL, '{{}}' {where}; "
                    f"{own}INSERT INTO {q} (job_id, queue, priority, execute_after, execution_id, enqueued_at) "
                    f"SELECT j.id, j.queue, j.priority, @now, j.execution_id, @now {where}; COMMIT",
                )
            elapsed = time.perf_counter() - started
            counts = await my_counts(cursor, database)
    finally:
        connection.close()
    check(counts, {"succeeded": 0, "enqueued": n, "history": 2 * n, "queue": n}, "schema_create (MySQL)")
    return n / elapsed
