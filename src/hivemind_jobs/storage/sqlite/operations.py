"""The storage operations for SQLite, as plain functions run on a connection's own thread.

Each function is one unit of work: it may run several statements, and runs them without a thread
hop in between. Times are integer microseconds; ``now`` is read once per operation in the thread
that owns the database connection (the database clock for SQLite). A write transaction holds the
whole database (``BEGIN IMMEDIATE``), so what an operation reads stays as read until it commits:
rows are read, decided on, then written, as the servers do with rows locked ``FOR UPDATE``.

:class:`SQLiteOperations` binds every function to the transaction class (see
:mod:`hivemind_jobs.storage.binding`); lists are handed to the thread as copies.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hivemind_jobs.core.clock import from_microseconds, to_microseconds
from hivemind_jobs.core.codec import compact_json
from hivemind_jobs.errors import StorageError
from hivemind_jobs.query.conditions import Condition
from hivemind_jobs.storage import params as p
from hivemind_jobs.storage.binding import (
    BoundOperations,
    operation,
    release_is_final,
    update_is_final,
    updates_are_final,
)
from hivemind_jobs.storage.compiler import Tables, compile_count, compile_job_search, compile_lock, compile_queues
from hivemind_jobs.storage.dialect import SQLITE
from hivemind_jobs.storage.rows import (
    AlikeRows,
    ClaimWalk,
    Times,
    alike_rows,
    claim_starts,
    continuation_links,
    event_list_params,
    event_params,
    fence_saves,
    insert_writes,
    job_records,
    job_rows,
    kept_due_ids,
    limit_set_params,
    new_link_rows,
    new_property_rows,
    occurrence_params,
    pointer_due,
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
from hivemind_jobs.storage.sql import SQL, QueryBook, to_numbered

if TYPE_CHECKING:
    from hivemind_jobs.storage.protocol import Operations

Queries = Mapping[str, SQL]


def now_us() -> int:
    return time.time_ns() // 1000


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _opt_dt(value: int | None) -> Any:
    return from_microseconds(value) if value is not None else None


def _ids(ids: Sequence[Any]) -> str:
    """Ids bound as one JSON array (``IN (SELECT value FROM json_each(:ids))``)."""
    return compact_json(list(ids))


#: times are integer microseconds, bound as they are
TIMES = Times(point=to_microseconds, span=_us, bind=same, encode=to_microseconds)


def _kept_due(con: sqlite3.Connection, q: Queries, pointers: Sequence[tuple[int, p.QueuePointer]]) -> dict[int, int]:
    """The due times of existing entries that ``keep_due`` pointers keep (one read, only when asked)."""
    ids = kept_due_ids(pointers)
    if not ids:
        return {}
    return {int(job_id): int(due) for job_id, due in con.execute(q["queue_due_many"], {"job_ids": _ids(ids)})}


_NUMBERED = re.compile(r"\?(\d+)")
#: rows per multi-row INSERT (SQLite binds at most 32,766 parameters per statement)
_ROWS_PER_INSERT = 250


class _RowInsert:
    """An ``INSERT ... VALUES (...) [ON CONFLICT ...]`` statement written for many rows at once.

    ``executemany`` runs the statement once per row, binding each row's dict by name (sqlite3
    looks every name up per row); a batch of created jobs writes four rows per job that way. This
    writes up to :data:`_ROWS_PER_INSERT` rows per statement, bound by position: a third less of
    SQLite's CPU per row. For statements whose text has no string literal (a ``:word`` in a literal
    would be taken for a parameter) and one parenthesised VALUES row.
    """

    def __init__(self, sql: SQL) -> None:
        if "'" in sql:
            raise ValueError("_RowInsert is for statements without string literals")
        head, values, tail = _values_row(sql)
        row, names = to_numbered(values)
        #: the parameters of a row, in the order a row's values are bound
        self.names = tuple(names)
        self._head, self._row, self._tail = head, row, tail
        self._width = len(names)
        self.values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*names) if len(names) > 1 else (lambda row, name=names[0]: (row[name],))  # type: ignore[misc]
        )

    @functools.lru_cache(maxsize=8)  # noqa: B019 (one instance per statement, kept for the process)
    def text(self, rows: int) -> str:
        """The statement for ``rows`` rows: row ``k`` binds parameters ``k * width + 1``..."""
        width = self._width

        def row(k: int) -> str:
            return _NUMBERED.sub(lambda match: f"?{k * width + int(match.group(1))}", self._row)

        return f"{self._head}VALUES {','.join(row(k) for k in range(rows))}{self._tail}"

    @functools.lru_cache(maxsize=8)  # noqa: B019 (one instance per statement, kept for the process)
    def shared_text(self, rows: int, own: tuple[str, ...]) -> str:
        """The statement for ``rows`` rows that share every parameter but ``own``: the shared ones
        are bound once, first, in the order of :attr:`names`; then each row's ``own`` ones."""
        shared = [name for name in self.names if name not in own]
        width = len(own)

        def row(k: int) -> str:
            def number(match: re.Match[str]) -> str:
                name = self.names[int(match.group(1)) - 1]
                if name in own:
                    return f"?{len(shared) + k * width + own.index(name) + 1}"
                return f"?{shared.index(name) + 1}"

            return _NUMBERED.sub(number, self._row)

        return f"{self._head}VALUES {','.join(row(k) for k in range(rows))}{self._tail}"

    def run_shared(
        self, con: sqlite3.Connection, shared: Mapping[str, Any], own: tuple[str, ...], values: list[Any]
    ) -> None:
        """Rows that differ only by their ``own`` parameters: ``shared`` holds every other one's
        value, ``values`` the rows' own values one row after the other (each in ``own``'s order)."""
        if set(own) - set(self.names) or set(shared) != set(self.names) - set(own):
            raise ValueError(f"run_shared: {sorted(shared)} and {own} are not the parameters {self.names}")
        first = [shared[name] for name in self.names if name not in own]
        width = len(own)
        step = _ROWS_PER_INSERT * width
        for start in range(0, len(values), step):
            chunk = values[start : start + step]
            con.execute(self.shared_text(len(chunk) // width, own), first + chunk)

    def run(self, con: sqlite3.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        self.run_flat(con, list(itertools.chain.from_iterable(map(self.values, rows))))

    def run_flat(self, con: sqlite3.Connection, values: list[Any]) -> None:
        """Rows given as one list of all their values, each row's in the order of :attr:`names`."""
        width = self._width
        step = _ROWS_PER_INSERT * width
        for start in range(0, len(values), step):
            chunk = values[start : start + step]
            con.execute(self.text(len(chunk) // width), chunk)


def _values_row(sql: str) -> tuple[str, str, str]:
    """``sql`` split around its one parenthesised VALUES row: the text before ``VALUES``, the row,
    and the rest (an ``ON CONFLICT`` clause, say)."""
    head, keyword, rest = sql.partition("VALUES")
    if not keyword or not rest.lstrip().startswith("("):
        raise ValueError(f"not an INSERT ... VALUES (...) statement: {sql!r}")
    opening = len(rest) - len(rest.lstrip())
    depth = 0
    for index in range(opening, len(rest)):
        depth += {"(": 1, ")": -1}.get(rest[index], 0)
        if depth == 0:
            return head, rest[opening : index + 1], rest[index + 1 :].rstrip().rstrip(";")
    raise ValueError(f"unbalanced VALUES row in {sql!r}")


@functools.cache
def _row_insert(sql: SQL) -> _RowInsert:
    return _RowInsert(sql)


#: fewer rows than this are written one statement per row (the multi-row text costs more than it saves)
_FEW_ROWS = 16


def _insert_rows(con: sqlite3.Connection, sql: SQL, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` with the single-row INSERT ``sql``: many rows per statement for a batch."""
    if len(rows) < _FEW_ROWS:
        con.executemany(sql, rows)
    else:
        _row_insert(sql).run(con, rows)


# ----------------------------------------------------------------------------- jobs


def _memo_microseconds() -> Callable[[datetime], int]:
    """``to_microseconds`` remembering its last answer: the states of jobs created together share
    their election time."""
    last: list[Any] = [None, 0]

    def encode(moment: datetime) -> int:
        if moment is not last[0]:
            last[0], last[1] = moment, to_microseconds(moment)
        return int(last[1])

    return encode


#: the parameters of job_insert, job_state_insert and queue_upsert in their order, as
#: :func:`_insert_batch` binds them
_JOB_NAMES = (
    "queue",
    "priority",
    "execution_id",
    "state_name",
    "state_sequence",
    "state_elected_at",
    "invocation",
    "middleware",
    "function_name",
    "lock_owner",
    "now",
)
_STATE_NAMES = ("job_id", "sequence", "name", "elected_at", "reason", "fields")
_QUEUE_NAMES = ("job_id", "queue", "priority", "execute_after", "now", "execution_id")


def _insert_batch(con: sqlite3.Connection, q: Queries, params: Sequence[p.JobInsert], now: int) -> range | None:
    """A batch of jobs, their states and queue entries written from the inserts' own values,
    without a parameter dict per row (four rows per job); what the jobs of an alike batch share
    (:func:`alike_rows`) is bound once. Their ids; None when a statement's parameters are not the
    ones this binds (the general path then writes the batch)."""
    jobs, states, pointers = (_row_insert(q[name]) for name in ("job_insert", "job_state_insert", "queue_upsert"))
    if (jobs.names, states.names, pointers.names) != (_JOB_NAMES, _STATE_NAMES, _QUEUE_NAMES):
        return None
    encode = _memo_microseconds()
    alike = alike_rows(params)
    if alike is not None and alike.columns:
        _alike_job_rows(con, jobs, params, alike, now, encode)
    else:
        values: list[Any] = []
        add = values.extend
        for job in params:
            current = job.states[-1]
            add(
                (
                    job.queue,
                    job.priority,
                    job.execution_id,
                    current.name,
                    current.sequence,
                    encode(current.elected_at),
                    job.invocation,
                    job.middleware,
                    job.function,
                    job.lock_owner,
                    now,
                )
            )
        jobs.run_flat(con, values)
    ids = _batch_ids(con, q, params)
    times = Times(point=encode, span=_us, bind=same, encode=encode)
    pairs = list(zip(ids, params, strict=True))
    if alike is not None:
        _alike_rows(con, q, ids, alike, now, times)
    else:
        _own_rows(con, pairs, states, pointers, now, times)
    properties = new_property_rows(pairs, encode)
    if properties:
        _insert_rows(con, q["job_property_upsert"], properties)
    links = new_link_rows(pairs, now)
    if links:
        con.executemany(q["continuation_insert"], links)
    return ids


#: what the job rows of an alike batch (:func:`alike_rows`) do not share
_OWN_JOB_NAMES = ("execution_id", "invocation")


def _alike_job_rows(
    con: sqlite3.Connection,
    jobs: _RowInsert,
    params: Sequence[p.JobInsert],
    alike: AlikeRows,
    now: int,
    encode: Callable[[datetime], int],
) -> None:
    """The job rows of a batch alike but for their execution ids and calls: the shared values
    bound once per statement."""
    values: list[Any] = []
    add = values.extend
    for job in params:
        add((job.execution_id, job.invocation))
    jobs.run_shared(con, {**alike.job_columns(encode), "now": now}, _OWN_JOB_NAMES, values)


def _alike_rows(con: sqlite3.Connection, q: Queries, ids: range, alike: AlikeRows, now: int, times: Times) -> None:
    """The history rows and queue entries of a batch of alike jobs (:func:`alike_rows`), each
    written by one ``INSERT ... SELECT`` over the batch's ids."""
    span = {"first_id": ids[0], "last_id": ids[-1]}
    encode = times.encode
    con.executemany(
        q["job_state_insert_range"],
        [
            {
                **span,
                "sequence": state.sequence,
                "name": state.name,
                "elected_at": encode(state.elected_at),
                "reason": state.reason,
                "fields": state.fields,
            }
            for state in alike.states
        ],
    )
    pointer = alike.pointer
    if pointer is not None:
        due = pointer_due(pointer, now, times)
        con.execute(
            q["queue_insert_range"],
            {**span, "queue": pointer.queue, "priority": pointer.priority, "execute_after": due, "now": now},
        )


def _own_rows(
    con: sqlite3.Connection,
    pairs: list[tuple[int, p.JobInsert]],
    states: _RowInsert,
    pointers: _RowInsert,
    now: int,
    times: Times,
) -> None:
    """The history rows and queue entries of a batch, each job's bound from its insert."""
    encode = times.encode
    values: list[Any] = []
    add = values.extend
    entries: list[Any] = []
    enter = entries.extend
    for job_id, job in pairs:
        for state in job.states:
            add((job_id, state.sequence, state.name, encode(state.elected_at), state.reason, state.fields))
        pointer = job.enqueue
        if pointer is not None:
            enter(
                (job_id, pointer.queue, pointer.priority, pointer_due(pointer, now, times), now, pointer.execution_id)
            )
    states.run_flat(con, values)
    if entries:
        pointers.run_flat(con, entries)


def _batch_ids(con: sqlite3.Connection, q: Queries, params: Sequence[p.JobInsert]) -> range:
    """The ids of a batch of jobs just inserted. The transaction holds the only write lock and ids
    are AUTOINCREMENT: the rows got consecutive ids ending at the last one. Checked on the first
    row of a batch, to be sure."""
    last = int(con.execute(q["job_last_id"]).fetchone()[0])
    ids = range(last - len(params) + 1, last + 1)
    if len(ids) > 1:
        first = (ids[0], params[0].execution_id)
        values = {"first_id": ids[0], "execution_ids": _ids(first[1:])}
        if first not in con.execute(q["job_ids_by_execution"], values).fetchall():
            raise StorageError("SQLite did not assign consecutive ids to a batch insert; nothing was written")
    return ids


def job_insert(con: sqlite3.Connection, q: Queries, params: Sequence[p.JobInsert]) -> list[p.JobInserted]:
    if not params:
        return []
    now = now_us()
    created = from_microseconds(now)
    if len(params) >= _FEW_ROWS:
        batch = _insert_batch(con, q, params, now)
        if batch is not None:
            return [p.JobInserted(job_id, created) for job_id in batch]
    encode = _memo_microseconds()
    rows = job_rows(params, now, encode)
    if len(rows) == 1:
        last = con.execute(q["job_insert"], rows[0]).lastrowid
        assert last is not None
        ids = range(last, last + 1)
    else:
        _insert_rows(con, q["job_insert"], rows)
        ids = _batch_ids(con, q, params)
    writes = insert_writes(ids, params, now, Times(point=encode, span=_us, bind=same, encode=encode))
    _insert_rows(con, q["job_state_insert"], writes.states)
    if writes.properties:
        _insert_rows(con, q["job_property_upsert"], writes.properties)
    if writes.pointers:
        _insert_rows(con, q["queue_upsert"], writes.pointers)
    if writes.links:
        con.executemany(q["continuation_insert"], writes.links)
    return [p.JobInserted(job_id, created) for job_id in ids]


def _records(
    con: sqlite3.Connection,
    q: Queries,
    ids: Sequence[int],
    acquired: set[int],
    claim: Mapping[str, Any] | None = None,
) -> dict[int, p.JobRecord]:
    """Full records of the jobs ``ids`` (three statements whatever the count); with ``claim``
    (``owner``, ``now``), as that claim locks them (``queue_select_claimed``)."""
    key = {"job_ids": _ids(ids)}
    rows = (
        con.execute(q["job_select_many"], key)
        if claim is None
        else con.execute(q["queue_select_claimed"], {**key, **claim})
    )
    return job_records(
        con.execute(q["job_state_select_many"], key),
        con.execute(q["job_property_select_many"], key),
        rows,
        acquired,
        from_microseconds,
    )


def job_get(con: sqlite3.Connection, q: Queries, params: p.JobGet) -> p.JobRecord | None:
    # ``for_update`` needs nothing more: the write transaction holds the database
    acquired: set[int] = set()
    if params.lock_requester is not None:
        cursor = con.execute(
            q["job_lock"], {"job_id": params.job_id, "requester": params.lock_requester, "now": now_us()}
        )
        if cursor.rowcount == 1:
            acquired.add(params.job_id)
    return _records(con, q, [params.job_id], acquired).get(params.job_id)


def job_get_many(con: sqlite3.Connection, q: Queries, params: Sequence[int]) -> list[p.JobRecord]:
    records = _records(con, q, params, set())
    return [records[job_id] for job_id in params if job_id in records]


def job_update(con: sqlite3.Connection, q: Queries, params: p.JobUpdate) -> p.JobUpdated:
    return _update_batch(con, q, [params])[0]


def job_update_many(con: sqlite3.Connection, q: Queries, params: Sequence[p.JobUpdate]) -> list[p.JobUpdated]:
    """The saves of a batch with a handful of statements whatever its size.

    The fences are checked with one read first; inside the write transaction nothing can change
    between that read and the writes, so every update that passed its fence applies.
    """
    ids = [update.job_id for update in params]
    if len(set(ids)) != len(ids):  # the same job twice: each save sees the one before it
        return [_update_batch(con, q, [update])[0] for update in params]
    return _update_batch(con, q, params)


def _update_batch(con: sqlite3.Connection, q: Queries, params: Sequence[p.JobUpdate]) -> list[p.JobUpdated]:
    """Fenced saves of distinct jobs (the single save is a batch of one)."""
    if not params:
        return []
    now = now_us()
    fence_rows = con.execute(q["job_fence_check_many"], {"job_ids": _ids([update.job_id for update in params])})
    outcomes, saved = fence_saves(params, {row[0]: row[1:] for row in fence_rows}, now, _us)
    writes = save_writes(saved, now, TIMES)
    pointers = queue_rows(writes.enqueue, now, _kept_due(con, q, writes.enqueue), TIMES)
    con.executemany(q["job_update"], writes.updates)
    if writes.states:
        con.executemany(q["job_state_insert"], writes.states)
    if writes.properties:
        con.executemany(q["job_property_upsert"], writes.properties)
    if writes.removed:
        con.executemany(q["job_property_delete"], writes.removed)
    if pointers:
        con.executemany(q["queue_upsert"], pointers)
    if writes.dequeued:
        con.execute(q["queue_take"], {"job_ids": _ids(writes.dequeued)})
    if writes.links:
        con.executemany(q["continuation_insert"], writes.links)
    found: tuple[p.ContinuationLink, ...] = ()
    if writes.changed or writes.released:
        found = continuation_links(
            con.execute(
                q["continuation_links_many"],
                {"changed_ids": _ids(writes.changed), "released_ids": _ids(writes.released)},
            )
        )
    return save_results(params, outcomes, found, from_microseconds(now))


def job_lock_takeover(con: sqlite3.Connection, q: Queries, params: p.JobLockTakeover) -> list[int]:
    now = now_us()
    rows = con.execute(
        q["job_lock_takeover_select"], {"cutoff": now - _us(params.lock_timeout), "limit": params.limit}
    ).fetchall()
    ids = sorted(int(row[0]) for row in rows)
    if ids:
        con.execute(q["job_lock_takeover"], {"job_ids": _ids(ids), "new_holder": params.new_holder, "now": now})
    return ids


def job_lock_release(con: sqlite3.Connection, q: Queries, params: p.JobLockRelease) -> p.JobLockReleased:
    cursor = con.execute(q["job_lock_release"], {"job_id": params.job_id, "holder": params.holder})
    if cursor.rowcount != 1:
        return p.JobLockReleased(False)
    fired = continuation_links(con.execute(q["continuation_fired_for_child"], {"child_id": params.job_id}))
    return p.JobLockReleased(True, fired)


def job_heartbeat(con: sqlite3.Connection, q: Queries, params: p.JobHeartbeat) -> frozenset[int]:
    if not params.job_ids:
        return frozenset()
    now = now_us()
    rows = con.execute(
        q["job_heartbeat_select"],
        {"job_ids": _ids(params.job_ids), "holder": params.holder, "cutoff": now - _us(params.lock_timeout)},
    ).fetchall()
    alive = sorted(int(row[0]) for row in rows)
    if alive:
        con.execute(q["job_heartbeat"], {"job_ids": _ids(alive), "now": now})
    return frozenset(alive)


def job_state_counts(con: sqlite3.Connection, q: Queries) -> dict[str, int]:
    return {name: int(count) for name, count in con.execute(q["job_state_counts"])}


def _tables(q: Queries) -> Tables:
    assert isinstance(q, QueryBook)
    return q.table


def job_search(con: sqlite3.Connection, q: Queries, params: p.JobSearch) -> list[p.JobRecord]:
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


def job_queues(con: sqlite3.Connection, q: Queries, params: p.JobQueues) -> list[str]:
    compiled = compile_queues(SQLITE, _tables(q), params.prefix, params.limit)
    return [row[0] for row in con.execute(compiled.sql, compiled.params)]


# ----------------------------------------------------------------------------- data, logs, actions


def job_data_get(con: sqlite3.Connection, q: Queries, params: p.JobDataGet) -> str | None:
    row = con.execute(q["job_data_select"], {"job_id": params.job_id, "name": params.name}).fetchone()
    return None if row is None else str(row[0])


def job_state_histogram(con: sqlite3.Connection, q: Queries, params: p.JobStateHistogram) -> dict[int, int]:
    values = {"state": params.state, "since": to_microseconds(params.since), "bucket": max(1, _us(params.bucket))}
    return {int(bucket): int(count) for bucket, count in con.execute(q["job_state_histogram"], values)}


def job_state_by_queue(con: sqlite3.Connection, q: Queries, params: p.JobStateSince) -> dict[str, int]:
    values = {"state": params.state, "since": to_microseconds(params.since)}
    return {str(queue): int(count) for queue, count in con.execute(q["job_state_by_queue"], values)}


def job_state_counts_capped(con: sqlite3.Connection, q: Queries, params: int) -> dict[str, int]:
    counts = {}
    (name,) = con.execute(q["job_state_next"], {"after": ""}).fetchone()
    while name is not None:
        (count,) = con.execute(q["job_state_count_capped"], {"state": name, "cap": params}).fetchone()
        counts[str(name)] = int(count)
        (name,) = con.execute(q["job_state_next"], {"after": name}).fetchone()
    return counts


def job_data_list(con: sqlite3.Connection, q: Queries, params: p.JobDataList) -> list[p.JobDataItem]:
    rows = con.execute(q["job_data_names"], {"job_id": params.job_id, "limit": params.limit}).fetchall()
    return [p.JobDataItem(str(name), int(size)) for name, size in rows]


def job_data_set(con: sqlite3.Connection, q: Queries, params: p.JobDataSet) -> bool:
    if con.execute(q["job_lock_row"], {"job_id": params.job_id}).fetchone() is None:
        return False
    values = {"job_id": params.job_id, "name": params.name, "value": params.value, "now": now_us()}
    con.execute(q["job_data_upsert"], values)
    return True


def job_log_insert(con: sqlite3.Connection, q: Queries, params: Sequence[p.JobLogRow]) -> int:
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


def job_log_list(con: sqlite3.Connection, q: Queries, params: p.JobLogList) -> list[p.JobLogRecord]:
    rows = con.execute(
        q["job_log_select"],
        {"job_id": params.job_id, "min_level": params.min_level, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        p.JobLogRecord(log_id, job_id, level, message, logger, exc_type, exc_message, trace, from_microseconds(created))
        for log_id, job_id, level, message, logger, exc_type, exc_message, trace, created in rows
    ]


def job_action_insert(con: sqlite3.Connection, q: Queries, params: p.JobActionInsert) -> int:
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


def job_action_list(con: sqlite3.Connection, q: Queries, params: p.JobActionList) -> list[p.JobActionRecord]:
    rows = con.execute(q["job_action_select"], {"job_ids": _ids(params.job_ids), "limit": params.limit})
    return [
        p.JobActionRecord(action_id, job_id, execution_id, kind, payload, requested_by, from_microseconds(created))
        for action_id, job_id, execution_id, kind, payload, requested_by, created in rows
    ]


def job_action_delete(con: sqlite3.Connection, q: Queries, params: Sequence[int]) -> int:
    before = con.total_changes
    con.executemany(q["job_action_delete"], [{"id": action_id} for action_id in params])
    return con.total_changes - before


def continuation_list(con: sqlite3.Connection, q: Queries, params: int) -> list[p.ContinuationLink]:
    return list(continuation_links(con.execute(q["continuation_list"], {"job_id": params})))


def continuation_mark(con: sqlite3.Connection, q: Queries, params: Sequence[p.ContinuationMark]) -> None:
    for mark in params:
        key = {"parent_id": mark.parent_id, "child_id": mark.child_id}
        if mark.delete:
            con.execute(q["continuation_delete"], key)
        else:
            con.execute(q["continuation_fire"], {**key, "fired_state": mark.fired_state})


def job_unique_claim(con: sqlite3.Connection, q: Queries, params: str) -> p.JobUniqueRecord:
    # A write transaction holds the database's write lock: nobody else claims the key meanwhile.
    key = {"unique_key": params}
    con.execute(q["job_unique_claim"], key)
    job_id, states, expires_at = con.execute(q["job_unique_select"], key).fetchone()
    if job_id is None:
        return p.JobUniqueRecord(None, (), None, None)
    row = con.execute(q["job_unique_job_state"], {"job_id": job_id}).fetchone()
    expires = from_microseconds(expires_at) if expires_at is not None else None
    return p.JobUniqueRecord(int(job_id), unique_states(states), expires, None if row is None else row[0])


def job_unique_set(con: sqlite3.Connection, q: Queries, params: p.JobUniqueSet) -> bool:
    values = unique_set_params(params, to_microseconds)
    return con.execute(q["job_unique_set"], values).rowcount == 1


def job_limit_set(con: sqlite3.Connection, q: Queries, params: Sequence[p.JobLimitSet]) -> int:
    return con.executemany(q["job_limit_set"], limit_set_params(params)).rowcount if params else 0


# ----------------------------------------------------------------------------- queue


def queue_claim(con: sqlite3.Connection, q: Queries, params: p.QueueClaim) -> list[p.ClaimedJob]:
    """The claim's walk (:class:`~hivemind_jobs.storage.rows.ClaimWalk`), each queue of a group
    read on its own; the candidates were read in this write transaction, so nobody can take or
    lock them before they are deleted and their jobs locked."""
    now = now_us()
    walk = _claim_walk(con, q, params, now)
    if not walk.taken:
        return []
    claimed = walk.claimed
    ids = [entry.job_id for entry in claimed]
    con.execute(q["queue_take"], {"job_ids": _ids(walk.taken)})
    con.execute(q["queue_lock_claimed"], {"job_ids": _ids(ids), "owner": params.owner, "now": now})
    if params.with_records and claimed:
        records = _records(con, q, ids, set(ids))
        for entry in claimed:
            entry.record = records.get(entry.job_id)
    return claimed


def _claim_walk(con: sqlite3.Connection, q: Queries, params: p.QueueClaim | p.QueueClaimStart, now: int) -> ClaimWalk:
    walk = ClaimWalk(params, from_microseconds)
    claim = q["queue_claim_select"]
    while (queues := walk.next_queues()) is not None:
        limit = walk.remaining
        walk.add([row for queue in queues for row in con.execute(claim, {"queue": queue, "now": now, "limit": limit})])
    if walk.limits:
        _claim_limited(con, q, walk, now)
    return walk


def _claim_limited(con: sqlite3.Connection, q: Queries, walk: ClaimWalk, now: int) -> None:
    """Keep the claimed jobs that fit their concurrency and rate limits (see
    :meth:`ClaimWalk.apply_limits`), counted inside this write transaction (no other claim runs
    meanwhile); record the starts kept."""
    concurrency, rate = walk.limit_keys()
    running: dict[str, int] = {}
    if concurrency:
        running = {key: int(count) for key, count in con.execute(q["limit_running"], {"keys": _ids(concurrency)})}
    starts: dict[str, list[datetime]] = {}
    if rate:
        for key, at in con.execute(q["limit_starts"], {"keys": _ids(rate)}):
            starts.setdefault(key, []).append(from_microseconds(at))
    at = from_microseconds(now)
    recorded = walk.apply_limits(running, starts, at)
    if rate:
        horizon = to_microseconds(walk.rate_horizon(at))
        con.execute(q["limit_start_prune"], {"keys": _ids(rate), "horizon": horizon})
        con.executemany(q["limit_start_insert"], [{"rate_key": key, "started_at": now} for key in recorded])


class _Claimed(list[p.ClaimedJob]):
    """The entries a claim took; ``settled``: it started every job it claimed, so it leaves its
    caller nothing to write (a job that could not start is failed after it, in the transaction)."""

    settled = True


def _claim_settled(result: list[p.ClaimedJob]) -> bool:
    """Whether a claim asked to commit may: it started every job it claimed."""
    return isinstance(result, _Claimed) and result.settled


def queue_claim_start(con: sqlite3.Connection, q: Queries, params: p.QueueClaimStart) -> list[p.ClaimedJob]:
    """The claim, the claimed records, then each job ``params.start`` starts saved with its new
    state (the claim has just locked it inside this write transaction: no fence to read)."""
    claimed = _Claimed()
    now = now_us()
    walk = _claim_walk(con, q, params, now)
    if not walk.taken:
        return claimed
    entries = walk.enqueued()
    con.execute(q["queue_take"], {"job_ids": _ids(walk.taken)})
    claimed.extend(walk.claimed)
    if not entries:
        return claimed
    ids = [entry.job_id for entry in entries]
    # the walk read these jobs unlocked, and nothing else writes before this transaction ends:
    # each started job is locked by the row write that starts it, the others by one UPDATE
    claim = {"owner": params.owner, "now": now}
    updates = claim_starts(params, entries, _records(con, q, ids, set(ids), claim))
    if updates:
        jobs, states = start_writes(updates, claim, to_microseconds)
        con.executemany(q["queue_start_claimed"], jobs)
        con.executemany(q["job_state_insert"], states)
    if len(updates) < len(ids):
        started = {update.job_id for update in updates}
        waiting = [job_id for job_id in ids if job_id not in started]
        con.execute(q["queue_lock_claimed"], {"job_ids": _ids(waiting), **claim})
        claimed.settled = False
    return claimed


def queue_stats(con: sqlite3.Connection, q: Queries) -> list[p.QueueStat]:
    now = now_us()
    return [
        p.QueueStat(
            queue, priority, int(ready or 0), int(delayed or 0), from_microseconds(first) if first <= now else None
        )
        for queue, priority, ready, delayed, first in con.execute(q["queue_stats"], {"now": now})
    ]


def queue_pause(con: sqlite3.Connection, q: Queries, params: p.QueuePause) -> bool:
    values = {"queue": params.queue, "now": now_us(), "reason": params.reason}
    return con.execute(q["queue_pause_insert"], values).rowcount == 1


def queue_resume(con: sqlite3.Connection, q: Queries, params: str) -> bool:
    return con.execute(q["queue_pause_delete"], {"queue": params}).rowcount == 1


def queue_pause_list(con: sqlite3.Connection, q: Queries) -> list[p.QueuePauseRecord]:
    return [
        p.QueuePauseRecord(queue, from_microseconds(paused_at), reason)
        for queue, paused_at, reason in con.execute(q["queue_pause_select_all"])
    ]


def clock_now(con: sqlite3.Connection, q: Queries) -> datetime:
    return from_microseconds(now_us())


# ----------------------------------------------------------------------------- colonies


def _colony(row: Sequence[Any]) -> p.ColonyRecord:
    colony_id, name, host, pid, status, state, started_at, heartbeat, progress = row
    return p.ColonyRecord(
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


def colony_upsert(con: sqlite3.Connection, q: Queries, params: p.ColonyUpsert) -> p.ColonyRecord:
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


def colony_get(con: sqlite3.Connection, q: Queries, params: str) -> p.ColonyRecord | None:
    row = con.execute(q["colony_select"], {"id": params}).fetchone()
    return None if row is None else _colony(row)


def colony_list(con: sqlite3.Connection, q: Queries) -> list[p.ColonyRecord]:
    return [_colony(row) for row in con.execute(q["colony_select_all"])]


def colony_delete(con: sqlite3.Connection, q: Queries, params: Sequence[str]) -> int:
    # rowcount, not total_changes: the daemon logs deleted by the cascade are not colonies
    return con.execute(q["colony_delete"], {"ids": _ids(params)}).rowcount


def colony_delete_stale(con: sqlite3.Connection, q: Queries, params: timedelta) -> list[str]:
    rows = con.execute(q["colony_stale_select"], {"cutoff": now_us() - _us(params)}).fetchall()
    ids = sorted(str(row[0]) for row in rows)
    if ids:
        colony_delete(con, q, ids)
    return ids


def daemon_log_insert(con: sqlite3.Connection, q: Queries, params: Sequence[p.DaemonLogRow]) -> int:
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


def daemon_log_list(con: sqlite3.Connection, q: Queries, params: p.DaemonLogList) -> list[p.DaemonLogRecord]:
    rows = con.execute(
        q["daemon_log_select"],
        {"colony_id": params.colony_id, "daemon": params.daemon, "after_id": params.after_id, "limit": params.limit},
    )
    return [
        p.DaemonLogRecord(log_id, colony_id, daemon, level, message, from_microseconds(created))
        for log_id, colony_id, daemon, level, message, created in rows
    ]


# ----------------------------------------------------------------------------- recurring jobs


def _recurring(row: Sequence[Any]) -> p.RecurringRecord:
    rid, definition, state_name, reason, next_run, job_id, stats, version, created, modified = row
    return p.RecurringRecord(
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


def recurring_get(con: sqlite3.Connection, q: Queries, params: p.RecurringGet) -> p.RecurringRecord | None:
    query = "recurring_select_for_update" if params.for_update else "recurring_select"
    row = con.execute(q[query], {"id": params.id}).fetchone()
    return None if row is None else _recurring(row)


def recurring_list(con: sqlite3.Connection, q: Queries, params: p.RecurringList) -> list[p.RecurringRecord]:
    name = "recurring_select_due" if params.due else "recurring_select_running" if params.running else None
    values = {"after_id": params.after_id, "limit": params.limit, "now": now_us()}
    rows = con.execute(q[name or "recurring_select_page"], values)
    return [_recurring(row) for row in rows]


def recurring_write(con: sqlite3.Connection, q: Queries, params: p.RecurringWrite) -> bool:
    values = recurring_write_params(params, now_us(), to_microseconds)
    query = "recurring_insert" if params.expected_version is None else "recurring_update"
    return con.execute(q[query], values).rowcount == 1


def recurring_delete(con: sqlite3.Connection, q: Queries, params: str) -> bool:
    con.execute(q["recurring_event_delete_all"], {"id": params})
    return con.execute(q["recurring_delete"], {"id": params}).rowcount == 1


def occurrence_insert(con: sqlite3.Connection, q: Queries, params: p.OccurrenceInsert) -> bool:
    values = occurrence_params(params, now_us(), to_microseconds)
    return con.execute(q["occurrence_insert"], values).rowcount == 1


def recurring_event_insert(con: sqlite3.Connection, q: Queries, params: Sequence[p.RecurringEventRow]) -> int:
    before = con.total_changes
    con.executemany(q["recurring_event_insert"], event_params(params, now_us()))
    return con.total_changes - before


def recurring_event_list(
    con: sqlite3.Connection, q: Queries, params: p.RecurringEventList
) -> list[p.RecurringEventRecord]:
    rows = con.execute(q["recurring_event_select"], event_list_params(params))
    return [
        p.RecurringEventRecord(event_id, rid, kind, name, message, fields, from_microseconds(created))
        for event_id, rid, kind, name, message, fields, created in rows
    ]


def recurring_event_prune(con: sqlite3.Connection, q: Queries, params: p.RecurringEventPrune) -> int:
    deleted = 0
    base = {"recurring_id": params.recurring_id, "kind": params.kind}
    if params.keep is not None:
        boundary = con.execute(q["recurring_event_kept_boundary"], {**base, "keep": params.keep}).fetchone()
        if boundary is not None:
            deleted += con.execute(q["recurring_event_prune_to"], {**base, "last_id": boundary[0]}).rowcount
    if params.older_than is not None:
        cutoff = now_us() - _us(params.older_than)
        deleted += con.execute(q["recurring_event_prune_age"], {**base, "cutoff": cutoff}).rowcount
    return deleted


# ----------------------------------------------------------------------------- maintenance


def job_purge(con: sqlite3.Connection, q: Queries, params: p.JobPurge) -> int:
    """Delete up to ``params.limit`` jobs finished longer than ``params.older_than`` ago, and the
    unique keys they held whose period has passed."""
    now = now_us()
    cutoff = now - _us(params.older_than)
    ids: list[int] = []
    for state in params.states:
        if len(ids) >= params.limit:
            break
        values = {"state": state, "cutoff": cutoff, "limit": params.limit - len(ids)}
        ids.extend(int(row[0]) for row in con.execute(q["job_purge_select"], values))
    if not ids:
        return 0
    purged = con.execute(q["job_purge"], {"ids": _ids(sorted(ids))}).rowcount
    con.execute(q["job_unique_release_purged"], {"ids": _ids(sorted(ids)), "now": now})
    return purged


def log_purge(con: sqlite3.Connection, q: Queries, params: p.LogPurge) -> int:
    query = purge_query(params)
    return con.execute(q[query], {"cutoff": now_us() - _us(params.older_than), "limit": params.limit}).rowcount


def lease_acquire(con: sqlite3.Connection, q: Queries, params: p.LeaseAcquire) -> bool:
    if params.release:
        return con.execute(q["lease_release"], {"name": params.name, "holder": params.holder}).rowcount == 1
    now = now_us()
    values = {"name": params.name, "holder": params.holder, "expires_at": now + _us(params.ttl)}
    if con.execute(q["lease_insert"], values).rowcount == 1:
        return True
    row = con.execute(q["lease_select_for_update"], {"name": params.name}).fetchone()
    if row is None:
        return False
    holder, expires_at = row
    if holder != params.holder and expires_at >= now:
        return False
    con.execute(q["lease_update"], values)
    return True


# ----------------------------------------------------------------------------- bound


class SQLiteOperations(BoundOperations):
    """Every operation, bound to :class:`~hivemind_jobs.storage.sqlite.backend.SQLiteTransaction`
    (which runs them on its connection's thread)."""

    job_insert = operation(job_insert, copy=True)
    job_get = operation(job_get)
    job_get_many = operation(job_get_many, copy=True)
    job_update = operation(job_update, final=update_is_final)
    job_update_many = operation(job_update_many, copy=True, final=updates_are_final)
    job_lock_release = operation(job_lock_release, final=release_is_final)
    job_heartbeat = operation(job_heartbeat)
    job_state_counts = operation(job_state_counts)
    job_search = operation(job_search)
    job_count = operation(job_count)
    job_queues = operation(job_queues)
    job_data_get = operation(job_data_get)
    job_data_list = operation(job_data_list)
    job_state_histogram = operation(job_state_histogram)
    job_state_by_queue = operation(job_state_by_queue)
    job_state_counts_capped = operation(job_state_counts_capped)
    job_data_set = operation(job_data_set)
    job_log_insert = operation(job_log_insert, copy=True)
    job_log_list = operation(job_log_list)
    job_action_insert = operation(job_action_insert)
    job_action_list = operation(job_action_list)
    job_action_delete = operation(job_action_delete, copy=True)
    continuation_list = operation(continuation_list)
    continuation_mark = operation(continuation_mark, copy=True)
    job_unique_claim = operation(job_unique_claim)
    job_unique_set = operation(job_unique_set)
    job_limit_set = operation(job_limit_set)
    queue_claim = operation(queue_claim)
    # asked to commit (the fetcher's last operation), the claim commits on the writer thread in
    # the same hop when it started every job it claimed: one hand-off per claim fewer
    queue_claim_start = operation(queue_claim_start, final=_claim_settled)
    queue_stats = operation(queue_stats)
    queue_pause = operation(queue_pause)
    queue_resume = operation(queue_resume)
    queue_pause_list = operation(queue_pause_list)
    colony_upsert = operation(colony_upsert)
    colony_get = operation(colony_get)
    colony_list = operation(colony_list)
    colony_delete = operation(colony_delete, copy=True)
    colony_delete_stale = operation(colony_delete_stale)
    daemon_log_insert = operation(daemon_log_insert, copy=True)
    daemon_log_list = operation(daemon_log_list)
    recurring_get = operation(recurring_get)
    recurring_list = operation(recurring_list)
    recurring_write = operation(recurring_write)
    recurring_delete = operation(recurring_delete)
    occurrence_insert = operation(occurrence_insert)
    recurring_event_insert = operation(recurring_event_insert, copy=True)
    recurring_event_list = operation(recurring_event_list)
    recurring_event_prune = operation(recurring_event_prune)
    job_lock_takeover = operation(job_lock_takeover)
    job_purge = operation(job_purge)
    log_purge = operation(log_purge)
    lease_acquire = operation(lease_acquire)
    clock_now = operation(clock_now)


if TYPE_CHECKING:
    _every_operation_with_its_types: type[Operations] = SQLiteOperations
