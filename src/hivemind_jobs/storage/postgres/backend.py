"""PostgreSQL storage: psycopg 3 (async) with a connection pool, LISTEN/NOTIFY wake-ups.

URL: ``postgresql://user:password@host:port/database`` (also ``postgres://``), with optional
query parameters:

- ``schema``: the PostgreSQL schema holding the environment's tables (default ``public``);
  environments sharing a schema are kept apart by their table prefix;
- ``auto_migrate=true``: create or upgrade the tables on open (otherwise ``hivemind db upgrade``);
- ``pool_size``: most pooled connections (default 10);
- ``connect_timeout``, ``sslmode``, ``application_name``: passed to libpq.

Every enqueue sends ``NOTIFY`` on the environment's channel with the job ids (never more than
fits PostgreSQL's 8000-byte payload); the notification is delivered at commit. Idle colonies
listen on one dedicated connection per storage and claim at once; the listener reconnects with
backoff after an outage and reports a change after every reconnect, so colonies then poll once.

A save that ends jobs in a final state (a completion batch, a delete) sends one ``NOTIFY`` on the
environment's second channel, ``<channel>_finished``, with those job ids (an empty payload when
they do not fit: "check every job you wait for"). Only processes that wait for results listen to
it (:meth:`PostgresStorage.subscribe_finished`, one more connection per storage), so colonies are
never woken by completions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, cast

from hivemind_jobs.core.codec import floatless_json, load_json
from hivemind_jobs.core.states import final_state_names, is_final_state
from hivemind_jobs.errors import ConfigurationError, RetryableStorageError, StorageError, TransactionError
from hivemind_jobs.storage.dialect import POSTGRES
from hivemind_jobs.storage.protocol import (
    Capabilities,
    JobInsert,
    JobUpdate,
    PendingInserts,
    PropertyRow,
    QueuePointer,
    StateRow,
)
from hivemind_jobs.storage.rows import AlikeRows, Times, alike_rows, property_params, same
from hivemind_jobs.storage.server.base import (
    CLOSE_WAIT,
    BlockingSession,
    Connection,
    Driver,
    ServerStorage,
    ServerURL,
    cancel_within,
)
from hivemind_jobs.storage.sql import (
    SQL,
    Migration,
    QueryBook,
    check_owner,
    check_table_names,
    owner_version,
    prefixed_names,
)

try:
    import psycopg
    import psycopg.errors
    import psycopg_pool
    from psycopg import sql as pgsql
    from psycopg.rows import tuple_row
except ImportError as missing:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        "the PostgreSQL backend needs psycopg 3 and psycopg-pool: pip install 'hivemind-jobs[postgres]'"
    ) from missing

__all__ = ["PostgresStorage"]

_PACKAGE = __name__.rpartition(".")[0]
_log = logging.getLogger("hivemind_jobs.storage.postgres")
_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_LIBPQ_OPTIONS = {"connect_timeout", "sslmode", "application_name"}
_NOTIFY_LIMIT = 7900  # bytes; PostgreSQL refuses payloads of 8000 bytes or more
#: deadlock, serialization failure, lock not available, admin shutdown, cannot connect now
_RETRY_SQLSTATES = {"40P01", "40001", "55P03", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001"}


def _channel(schema: str, prefix: str) -> str:
    digest = hashlib.sha1(f"{schema}.{prefix}".encode(), usedforsecurity=False).hexdigest()[:16]
    return f"hivemind_{digest}"


def _finished_channel(channel: str) -> str:
    return f"{channel}_finished"


def _id_payload(job_ids: Sequence[int], *, whole: bool) -> str:
    """Job ids for a NOTIFY payload, cut below PostgreSQL's limit; ``whole``: a list that does not
    fit becomes empty (listeners then check every job) instead of being cut short."""
    payload = ",".join(map(str, job_ids))
    if len(payload) > _NOTIFY_LIMIT:
        payload = "" if whole else payload[: payload.rfind(",", 0, _NOTIFY_LIMIT)]
    return payload


def _finished_ids(payload: str) -> frozenset[int] | None:
    """The job ids of a finished-jobs payload; None for "any job" (empty or not ids)."""
    try:
        return frozenset(int(part) for part in payload.split(",")) if payload else None
    except ValueError:
        return None


#: parameters that are the same for every row of a set-based statement
_SCALARS = frozenset({"now", "owner"})
_PLACEHOLDER = re.compile(r"%\(([a-z_0-9]+)\)s")

_BEGIN = b"BEGIN"
_COMMIT = b"COMMIT"
_NOTHING = contextlib.nullcontext()


@functools.lru_cache(maxsize=64)
def _binary(sql: str) -> SQL:
    """Parameters sent in binary format: arrays then need no text quoting and escaping. Sent
    without the lines' indentation: psycopg keeps a statement's parsed placeholders only for
    statements up to 4 KB, which the longest ones (the one-statement claim) then stay under."""
    unindented = "\n".join(line.strip() for line in sql.splitlines())
    return SQL(_PLACEHOLDER.sub(r"%(\1)b", unindented))


#: A batch of this many jobs or more, in a transaction of its own, is written part by part
#: (:meth:`_PgConnection._insert_parts`): a first part of ``_FIRST_PART`` jobs, so that the
#: server starts writing as soon as it is built, each next part twice the one before, up to
#: ``_LARGEST_PART`` (the client builds a part in about two thirds of the time the server takes to
#: write one, so each part is ready before the server has written the one before it)
_PARTS_FROM = 100
_FIRST_PART = 40
_LARGEST_PART = 400


def _part_bounds(count: int) -> list[tuple[int, int]]:
    """(start, end) of the parts of a batch of ``count`` jobs written part by part."""
    bounds: list[tuple[int, int]] = []
    start, size = 0, _FIRST_PART
    while start < count:
        end = min(count, start + size)
        bounds.append((start, end))
        start, size = end, min(2 * size, _LARGEST_PART)
    return bounds


@functools.lru_cache(maxsize=8)
def _transaction_clock(sql: str) -> SQL:
    """``sql`` (sent in binary, :func:`_binary`) on the transaction's clock instead of the
    statement's: the statements of one batch written in parts give its jobs one creation time."""
    return _binary(sql.replace("statement_timestamp()", "transaction_timestamp()"))


def _ids_in_order(params: Sequence[JobInsert], rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """The ids ``job_insert_set`` answered (id, execution id, clock, notified), in the order of its jobs."""
    by_execution = {execution_id: int(job_id) for job_id, execution_id, _, _ in rows}
    return [by_execution[job.execution_id] for job in params]


def _columns(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Row dicts as one list per column (scalars once), for statements over ``unnest``."""
    first = rows[0]
    return {key: first[key] if key in _SCALARS else [row[key] for row in rows] for key in first}


def _property_columns(rows: Sequence[PropertyRow]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in _PROPERTY_COLUMNS}
    for row in rows:
        for name, value in zip(_PROPERTY_COLUMNS, _property_values(row), strict=True):
            columns[name].append(value)
    return columns


_PROPERTY_COLUMNS = (
    "p_name",
    "p_type",
    "p_text_value",
    "p_int_value",
    "p_float_value",
    "p_bool_value",
    "p_datetime_value",
)


def _property_values(row: PropertyRow) -> tuple[Any, ...]:
    values = property_params(0, row, same)
    return (
        values["name"],
        values["type"],
        values["text_value"],
        values["int_value"],
        values["float_value"],
        values["bool_value"],
        values["datetime_value"],
    )


def _empty_as_null(values: dict[str, Any]) -> dict[str, Any]:
    """Empty arrays sent as NULL: ``unnest`` of either yields no rows, and psycopg dumps a NULL at
    once where an empty list costs it an array dumper lookup (most jobs have no properties, no
    parent and, in a batch, every job or none has a queue entry)."""
    return {key: None if value == [] else value for key, value in values.items()}


def _history_json(states: Sequence[StateRow]) -> str:
    """New history rows as the JSON ``job_insert`` reads with ``json_to_recordset`` (integers, text
    and None: :func:`floatless_json`)."""
    return floatless_json(
        [
            {
                "sequence": state.sequence,
                "name": state.name,
                "elected_at": state.elected_at.isoformat(),
                "reason": state.reason,
                "fields": state.fields,
            }
            for state in states
        ]
    )


def _plain_job(job: JobInsert, channel: str) -> dict[str, Any] | None:
    """The parameters of ``job_insert_plain``, or None when the job is not one it writes (see there)."""
    pointer = job.enqueue
    if (
        pointer is None
        or job.properties
        or job.lock_owner is not None
        or job.awaiting_parent is not None
        or len(job.states) != 2
        or pointer.delay is not None
        or (pointer.queue, pointer.priority, pointer.execution_id) != (job.queue, job.priority, job.execution_id)
    ):
        return None
    created, current = job.states
    if (created.sequence, created.name, created.reason, current.sequence) != (0, "Created", None, 1):
        return None
    if created.elected_at != current.elected_at:
        return None
    return {
        "queue": job.queue,
        "priority": job.priority,
        "execution_id": job.execution_id,
        "state_name": current.name,
        "elected_at": current.elected_at,
        "invocation": job.invocation,
        "middleware": job.middleware,
        "function_name": job.function,
        "created_fields": created.fields,
        "reason": current.reason,
        "fields": current.fields,
        "execute_after": pointer.execute_after,
        "channel": channel,
    }


def _one_job(job: JobInsert, channel: str) -> dict[str, Any]:
    """The parameters of ``job_insert``."""
    current = job.states[-1]
    pointer = job.enqueue
    values: dict[str, Any] = {
        "queue": job.queue,
        "priority": job.priority,
        "execution_id": job.execution_id,
        "state_name": current.name,
        "state_sequence": current.sequence,
        "state_elected_at": current.elected_at,
        "invocation": job.invocation,
        "middleware": job.middleware,
        "function_name": job.function,
        "lock_owner": job.lock_owner,
        # one JSON text for the history rows: psycopg dumps it at once, where five arrays cost it
        # a dumper lookup each (a third of the client's work on a create)
        "states": _history_json(job.states),
        "q_queue": pointer.queue if pointer is not None else None,
        "q_priority": pointer.priority if pointer is not None else None,
        "q_execute_after": pointer.execute_after if pointer is not None else None,
        "q_delay": pointer.delay if pointer is not None else None,
        "q_execution_id": pointer.execution_id if pointer is not None else None,
        "parent_id": job.awaiting_parent,
        "channel": channel,
    }
    values.update(_property_columns(job.properties))
    return _empty_as_null(values)


#: the columns of ``job_insert_set``'s job rows but the execution id and the call
_JOB_COLUMNS = (
    "queue",
    "priority",
    "state_name",
    "state_sequence",
    "state_elected_at",
    "middleware",
    "function_name",
    "lock_owner",
)
_NO_COLUMNS = dict.fromkeys(_JOB_COLUMNS)
_NO_SHARED_COLUMNS = {f"all_{name}": None for name in _JOB_COLUMNS}


def _job_columns(params: Sequence[JobInsert], alike: AlikeRows | None) -> dict[str, Any]:
    """The columns of ``job_insert_set``'s job rows but the execution id and the call: an array
    each, or, for jobs alike in all of them, one value each (``all_<column>``)."""
    if alike is not None and alike.columns:
        shared = alike.job_columns(same)
        return {**_NO_COLUMNS, **{f"all_{name}": shared[name] for name in _JOB_COLUMNS}}
    return {
        **_NO_SHARED_COLUMNS,
        "queue": [job.queue for job in params],
        "priority": [job.priority for job in params],
        "state_name": [job.states[-1].name for job in params],
        "state_sequence": [job.states[-1].sequence for job in params],
        "state_elected_at": [job.states[-1].elected_at for job in params],
        "middleware": [job.middleware for job in params],
        "function_name": [job.function for job in params],
        "lock_owner": [job.lock_owner for job in params],
    }


def _job_batch(params: Sequence[JobInsert], channel: str) -> dict[str, Any]:
    """The parameters of ``job_insert_set``: one array per column, each row keyed by its job's
    execution id; the rows every job has alike (:func:`alike_rows`) given once."""
    alike = alike_rows(params)
    if alike is None:
        states = [(job.execution_id, state) for job in params for state in job.states]
        pointers = [(job.execution_id, job.enqueue) for job in params if job.enqueue is not None]
        shared: Sequence[StateRow] = ()
        entry: list[QueuePointer] = []
    else:
        states, pointers, shared = [], [], alike.states
        entry = [] if alike.pointer is None else [alike.pointer]
    links = [(job.execution_id, job.awaiting_parent) for job in params if job.awaiting_parent is not None]
    properties = [(job.execution_id, row) for job in params for row in job.properties]
    values: dict[str, Any] = {
        "execution_id": [job.execution_id for job in params],
        "invocation": [job.invocation for job in params],
        **_job_columns(params, alike),
        "s_job": [key for key, _ in states],
        "s_sequence": [state.sequence for _, state in states],
        "s_name": [state.name for _, state in states],
        "s_elected_at": [state.elected_at for _, state in states],
        "s_reason": [state.reason for _, state in states],
        "s_fields": [state.fields for _, state in states],
        "p_job": [key for key, _ in properties],
        "q_job": [key for key, _ in pointers],
        "q_queue": [pointer.queue for _, pointer in pointers],
        "q_priority": [pointer.priority for _, pointer in pointers],
        "q_execute_after": [pointer.execute_after for _, pointer in pointers],
        "q_delay": [pointer.delay for _, pointer in pointers],
        "q_execution_id": [pointer.execution_id for _, pointer in pointers],
        "a_sequence": [state.sequence for state in shared],
        "a_name": [state.name for state in shared],
        "a_elected_at": [state.elected_at for state in shared],
        "a_reason": [state.reason for state in shared],
        "a_fields": [state.fields for state in shared],
        "qa_queue": [pointer.queue for pointer in entry],
        "qa_priority": [pointer.priority for pointer in entry],
        "qa_execute_after": [pointer.execute_after for pointer in entry],
        "qa_delay": [pointer.delay for pointer in entry],
        "l_job": [key for key, _ in links],
        "l_parent_id": [parent for _, parent in links],
        "channel": channel,
    }
    values.update(_property_columns([row for _, row in properties]))
    return _empty_as_null(values)


#: what a server that answers but cannot serve yet says (it may later)
_NOT_YET = ("the database system is starting up", "the database system is shutting down", "in recovery")


def _unreachable(error: BaseException) -> bool:
    """Whether a failed connection attempt got no answer that would stay the same (a refused or
    timed-out connection, a server starting up), rather than a refusal (role, password, database)."""
    text = str(error)
    return "FATAL:" not in text or any(words in text for words in _NOT_YET)


class _OwnConnection(psycopg.AsyncConnection[Any]):
    """A connection of HiveMind's own pool. It keeps a cursor for the statements whose rows are
    read before its next one (see :meth:`_PgConnection._cursor`): a new cursor looks up the dumpers
    of its parameters and the loaders of its columns again, about a sixth of a create's client CPU.

    It is in autocommit mode: :class:`_PgConnection` sends each transaction's ``BEGIN`` itself, in
    the round trip of the transaction's first statement(s). (Outside autocommit psycopg sends the
    ``BEGIN`` in a round trip of its own, even in pipeline mode.)"""

    kept_cursor: psycopg.AsyncCursor[Any] | None = None

    def kept(self) -> psycopg.AsyncCursor[Any]:
        cursor = self.kept_cursor
        if cursor is None or cursor.closed:
            cursor = self.kept_cursor = self.cursor(row_factory=tuple_row)
        return cursor


class _PgConnection(Connection):
    __slots__ = ("begin_pending", "channel", "finished_channel", "raw")
    dialect = POSTGRES
    times = Times(point=same, span=same, bind=same, encode=same)
    starts_in_claim = True
    finishes_in_update = True

    def __init__(self, raw: psycopg.AsyncConnection[Any], channel: str) -> None:
        self.raw = raw
        self.channel = channel
        self.finished_channel = _finished_channel(channel)
        #: HiveMind's own connection (autocommit) whose transaction has sent no statement yet: the
        #: first one goes after a ``BEGIN`` in the same round trip (see :meth:`_first`)
        self.begin_pending = isinstance(raw, _OwnConnection)

    def _first(self) -> AbstractAsyncContextManager[object]:
        """Around the sending of a statement (its rows read after it): while the transaction's
        ``BEGIN`` is still to be sent, a pipeline that sends it first, in the same round trip (or the
        pipeline the statement is sent in already); otherwise nothing."""
        if not self.begin_pending:
            return _NOTHING
        return self._begun()

    @contextlib.asynccontextmanager
    async def _begun(self) -> AsyncIterator[None]:
        raw = self.raw
        async with _NOTHING if raw.pgconn.pipeline_status else raw.pipeline():
            await self._send_begin()
            yield

    async def _send_begin(self) -> None:
        """The transaction's ``BEGIN``, in the pipeline open, if it is still to be sent."""
        if self.begin_pending:
            self.begin_pending = False
            await self.raw.execute(_BEGIN)

    def _alone(self) -> bool:
        """Whether the operation's one statement is the whole transaction (the operation is the
        transaction's only one and nothing has been sent): it runs on its own, in autocommit, and
        the transaction is committed with it."""
        if self.sole and self.begin_pending:
            self.begin_pending = False
            return True
        return False

    def _cursor(self) -> psycopg.AsyncCursor[Any]:
        """A cursor for a statement whose rows are read at once: the connection's kept one on a
        connection of HiveMind's pool, except in pipeline mode (there each statement's results come
        later, on a cursor of its own); a new one on an application's connection, never one of the
        pool's (its tasks may share it)."""
        raw = self.raw
        if isinstance(raw, _OwnConnection) and not raw.pgconn.pipeline_status:
            return raw.kept()
        return raw.cursor(row_factory=tuple_row)  # whatever row factory the connection has

    async def fetchall(self, sql: SQL, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        async with self._first():
            cursor = self._cursor()
            await cursor.execute(sql, params)
        return await cursor.fetchall()

    async def execute(self, sql: SQL, params: dict[str, Any] | None = None) -> int:
        async with self._first():
            cursor = await self._cursor().execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: SQL, params: Sequence[dict[str, Any]]) -> int:
        if not params:
            return 0
        if len(params) == 1:  # executemany runs a pipeline: not worth it for one row
            return await self.execute(sql, params[0])
        async with self._first():
            cursor = self.raw.cursor()
            await cursor.executemany(sql, params)
        return cursor.rowcount

    async def write_rows(self, q: Mapping[str, SQL], name: str, rows: Sequence[dict[str, Any]]) -> None:
        """Several rows as one statement over arrays (``<name>_set``, ``unnest``): far less work
        per row than a parameter set each. ``job_update_set`` also notifies the jobs it finished
        (see :meth:`notify_finished`)."""
        if len(rows) < 2:
            await self.executemany(q[name], rows)
            return
        values = _columns(rows)
        if name == "job_update":
            values["finished_channel"] = self.finished_channel
            values["final_states"] = final_state_names()
        async with self._first():
            await self.raw.execute(_binary(q[f"{name}_set"]), values)

    async def insert_if_absent(self, sql: SQL, params: dict[str, Any]) -> bool:
        return await self.execute(sql, params) == 1  # the statement says ON CONFLICT DO NOTHING

    async def insert_id(self, sql: SQL, params: dict[str, Any]) -> int:
        async with self._first():
            cursor = self._cursor()
            await cursor.execute(sql, params)
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def insert_jobs(self, q: Mapping[str, SQL], params: Sequence[dict[str, Any]]) -> list[int]:
        """Not used: new jobs are written whole by :meth:`insert_new_jobs` (``job_insert`` and
        ``job_insert_set`` write a job's other rows too)."""
        raise NotImplementedError("PostgreSQL writes new jobs with insert_new_jobs")

    async def insert_new_jobs(
        self, q: Mapping[str, SQL], params: Sequence[JobInsert]
    ) -> tuple[list[int], datetime] | None:
        """One statement for the jobs and everything with them (``job_insert`` for one job,
        ``job_insert_set`` over arrays for more); when it is the transaction's only operation it
        runs in autocommit: the statement is the whole transaction, one round trip.
        :class:`PendingInserts` of ``_PARTS_FROM`` jobs or more are written part by part (:meth:`_insert_parts`)."""
        if isinstance(params, PendingInserts) and len(params) >= _PARTS_FROM:
            return await self._insert_parts(q, params)
        if len(params) == 1:
            plain = _plain_job(params[0], self.channel)
            if plain is not None:
                sql, values = _binary(q["job_insert_plain"]), plain
            else:
                sql, values = _binary(q["job_insert"]), _one_job(params[0], self.channel)
        else:
            sql, values = _binary(q["job_insert_set"]), _job_batch(params, self.channel)
        alone = self._alone()
        rows = await self.fetchall(sql, values)
        if alone:
            self.committed = True
        if len(params) == 1:
            return [int(rows[0][0])], self.dt(rows[0][1])
        return _ids_in_order(params, rows), self.dt(rows[0][2])

    async def _insert_parts(self, q: Mapping[str, SQL], params: PendingInserts) -> tuple[list[int], datetime]:
        """A batch in a transaction of its own as ``job_insert_set`` statements of growing parts
        (:func:`_part_bounds`) in one pipeline, each part built (its calls checked and encoded) while
        the server runs the one before it; the BEGIN before them and the COMMIT after them in the
        same round trip. They share the transaction's clock (:func:`_transaction_clock`), read by
        the BEGIN. A call that cannot be built raises with the parts before it sent and not
        committed: the transaction rolls them back."""
        raw = self.raw
        sql = _transaction_clock(q["job_insert_set"])
        parts: list[tuple[list[JobInsert], psycopg.AsyncCursor[Any]]] = []
        async with raw.pipeline():
            await self._send_begin()
            for start, end in _part_bounds(len(params)):
                rows = params.rows(start, end)
                cursor = raw.cursor(row_factory=tuple_row)
                await cursor.execute(sql, _job_batch(rows, self.channel))  # sent: the next part is built meanwhile
                parts.append((rows, cursor))
            if self.sole:
                await self._commit_queued()
        answers = [await cursor.fetchall() for _, cursor in parts]
        ids = [job_id for (rows, _), found in zip(parts, answers, strict=True) for job_id in _ids_in_order(rows, found)]
        return ids, self.dt(answers[0][0][2])

    def pipeline(self) -> AbstractAsyncContextManager[object]:
        # fewer round trips; on a loopback connection about even with psycopg's pipeline cost,
        # a clear gain once the database is a network hop away
        return self.raw.pipeline()

    async def commit_in_pipeline(self) -> bool:
        if not (self.sole or self.last):
            return False
        await self._commit_queued()
        return True

    async def _commit_queued(self) -> None:
        """The transaction's COMMIT, in pipeline mode: sent after the statements before it, with
        them. As a statement on HiveMind's own (autocommit) connection: ``commit()`` would wait for
        its own sync, one round trip more."""
        if isinstance(self.raw, _OwnConnection):
            await self.raw.execute(_COMMIT)
            # what the operation turns out to need after it (see the lean claim) goes in a new
            # transaction on the same connection, which the caller commits
            self.begin_pending = True
        else:
            await self.raw.commit()
        self.committed = True

    async def fetch_later(self, sql: SQL, params: dict[str, Any]) -> Callable[[], Awaitable[list[tuple[Any, ...]]]]:
        async with self._first():
            cursor = self.raw.cursor(row_factory=tuple_row)
            await cursor.execute(sql, params)  # in pipeline mode: queued with the statements before it
        return cursor.fetchall

    async def fetch_each(
        self,
        queries: Sequence[tuple[SQL, dict[str, Any]]],
        *,
        writes: Sequence[tuple[SQL, dict[str, Any]]] = (),
        commit: bool = False,
    ) -> list[list[tuple[Any, ...]]]:
        """The rows of each query, sent in one pipeline after ``writes``; with ``commit`` the
        transaction's COMMIT goes after them in the same round trip (and :attr:`committed` is set)."""
        raw = self.raw
        # The whole transaction (nothing sent before, the COMMIT with it): no BEGIN and COMMIT, the
        # statements up to the pipeline's one Sync are one transaction, committed at the Sync
        implicit = commit and self.begin_pending
        async with raw.pipeline():
            if not implicit:
                await self._send_begin()
            for sql, params in writes:
                await raw.execute(sql, params)
            cursors = []
            for sql, params in queries:
                cursor = raw.cursor(row_factory=tuple_row)
                await cursor.execute(sql, params)
                cursors.append(cursor)
            if commit and not implicit:
                await self._commit_queued()
        if implicit:
            self.committed = True  # what follows goes in a new transaction (begin_pending stays)
        return [await cursor.fetchall() for cursor in cursors]

    async def claim_rows(self, q: Mapping[str, SQL], params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The claim after ``queue_claim_prepare`` (same round trip): a queue table changes too fast
        for its statistics, and a plan that sorts every due entry instead of walking the claim
        index costs milliseconds per claim."""
        rows = await self.fetch_each([(q["queue_claim_prepare"], {}), (q["queue_claim_select"], params)])
        return rows[1]

    async def claim_start_rows(
        self, q: Mapping[str, SQL], params: dict[str, Any], *, commit: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of ``queue_claim_start_lean`` after ``queue_claim_prepare`` (as
        :meth:`claim_rows`), its arrays of JSON text sent in binary (no quoting to escape); with
        ``commit``, the COMMIT in the same round trip."""
        claim = (_binary(q["queue_claim_start_lean"]), params)
        return (await self.fetch_each([claim], writes=[(q["queue_claim_prepare"], {})], commit=commit))[0]

    async def finish_rows(
        self, q: Mapping[str, SQL], params: dict[str, Any]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """``job_finish_fenced`` (arrays in binary: the states' JSON needs no escaping), which
        also returns the continuation links of its batch (as ``continuation_links_many`` would,
        JSON text in the first row's last column): one statement."""
        values = {**params, "finished_channel": self.finished_channel, "final_states": final_state_names()}
        sql = _binary(q["job_finish_fenced"])
        alone = self._alone()
        rows = await self.fetchall(sql, {**values, "alone": alone})
        if alone and rows:  # written and committed: the batch has no continuation links
            self.committed = True
        elif alone:  # nothing written (continuation links, or no fence passed): in a transaction
            self.begin_pending = True
            rows = await self.fetchall(sql, {**values, "alone": False})
        found = rows[0][3] if rows else None
        return rows, [tuple(link) for link in load_json(found)] if found is not None else []

    async def revert_starts(self, q: Mapping[str, SQL], params: Sequence[dict[str, Any]]) -> None:
        await self.executemany(q["queue_start_revert"], params)

    async def notify(self, q: Mapping[str, SQL], job_ids: Sequence[int]) -> None:
        payload = _id_payload(job_ids, whole=False)
        async with self._first():
            await self.raw.execute(q["queue_notify"], {"channel": self.channel, "payload": payload})

    async def notify_finished(self, q: Mapping[str, SQL], saved: Sequence[JobUpdate]) -> None:
        """The ``NOTIFY`` of a single save that ends its job; several saves are written by
        ``job_update_set``, whose statement notifies itself (no statement more per batch)."""
        if len(saved) != 1:
            return
        finished = [
            update.job_id for update in saved if update.new_states and is_final_state(update.new_states[-1].name)
        ]
        if finished:
            payload = _id_payload(finished, whole=True)
            async with self._first():
                await self.raw.execute(q["queue_notify"], {"channel": self.finished_channel, "payload": payload})

    def dt(self, value: datetime) -> datetime:
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def bind_dt(self, value: datetime) -> Any:
        return value


class _BlockingPgCursor:
    """A sync psycopg cursor with the awaitable calls :class:`_PgConnection` makes."""

    __slots__ = ("cursor",)

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.cursor = cursor

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount

    async def execute(self, sql: Any, params: Any = None) -> _BlockingPgCursor:
        self.cursor.execute(sql, params)
        return self

    async def executemany(self, sql: Any, params: Any) -> None:
        self.cursor.executemany(sql, params)

    async def fetchall(self) -> list[Any]:
        return self.cursor.fetchall()

    async def fetchone(self) -> Any:
        return self.cursor.fetchone()


class _BlockingPg:
    """An application's sync ``psycopg.Connection`` (a web framework's, e.g. Django's) with the
    awaitable calls :class:`_PgConnection` makes: each runs at once, on the calling thread.

    Cursors are psycopg's own server-side-binding ones whatever cursor factory the application
    set (a client-side-binding cursor cannot send the binary parameters of the job inserts)."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def cursor(self, *, row_factory: Any = None) -> _BlockingPgCursor:
        if row_factory is None:
            return _BlockingPgCursor(psycopg.Cursor(self.raw))
        return _BlockingPgCursor(psycopg.Cursor(self.raw, row_factory=row_factory))

    async def execute(self, sql: Any, params: Any = None) -> _BlockingPgCursor:
        return await self.cursor().execute(sql, params)

    @contextlib.asynccontextmanager
    async def pipeline(self) -> AsyncIterator[object]:
        with self.raw.pipeline() as pipeline:
            yield pipeline


class _PgBlockingSession(BlockingSession):
    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def fetchall(self, sql: SQL, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cursor = self.raw.cursor(row_factory=tuple_row)
        cursor.execute(sql, params)
        return cursor.fetchall()

    def execute(self, sql: SQL, params: dict[str, Any] | None = None) -> int:
        return self.raw.execute(sql, params).rowcount

    def commit(self) -> None:
        self.raw.commit()

    def close(self) -> None:
        self.raw.close()

    def fileno(self) -> int:
        return self.raw.fileno()

    def dt(self, value: datetime) -> datetime:
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def bind_dt(self, value: datetime) -> Any:
        return value


class _PgDriver(Driver):
    dialect = "postgresql"
    capabilities = Capabilities(
        dialect="postgresql",
        single_writer=False,
        skip_locked=True,
        listen_notify=True,
        returning_on_update=True,
        transactional_ddl=True,
        inserts_in_parts=True,
    )

    def __init__(self, url: ServerURL, schema: str, prefix: str) -> None:
        self.url = url
        self.schema = self.namespace = schema
        self.quote = '"'
        self.prefix = prefix
        self.channel = _channel(schema, prefix)
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._users = 0

    def conninfo(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "host": self.url.host,
            "port": self.url.port,
            "dbname": self.url.database,
            # no JIT: a queue's statements are short, compiling costs more than it saves
            "options": "-c TimeZone=UTC -c jit=off",
        }
        if self.url.user:
            info["user"] = self.url.user
        if self.url.password:
            info["password"] = self.url.password
        info.update(self.url.options)
        return info

    async def connect(self, *, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(autocommit=autocommit, **self.conninfo())

    def connect_blocking(self, timeout: float) -> BlockingSession:
        info = self.conninfo()
        millis = max(1, math.ceil(timeout * 1000))
        # The server ends a statement or lock wait past the deadline, and a session left inside a
        # transaction (its client gone silent) soon after, so its row locks cannot hold up the
        # lock monitor of another colony.
        info["options"] = (
            f"{info['options']} -c statement_timeout={millis} -c lock_timeout={millis} "
            f"-c idle_in_transaction_session_timeout={max(1000, 2 * millis)}"
        )
        seconds = max(1, math.ceil(timeout))
        info["connect_timeout"] = min(seconds, int(float(info.get("connect_timeout", seconds)) or seconds))
        info.update(keepalives=1, keepalives_idle=seconds, keepalives_interval=1, keepalives_count=3)
        info["tcp_user_timeout"] = millis
        info.setdefault("application_name", "hivemind-lock-renewer")
        return _PgBlockingSession(psycopg.Connection.connect(autocommit=False, **info))

    async def open_pool(self) -> None:
        self._users += 1
        if self._pool is not None:
            return
        try:  # one direct attempt first: a wrong database, role or host is reported at once
            await (await self.connect()).close()
        except psycopg.Error as error:
            self._users -= 1
            # no answer from a server (refused, timed out, starting up): trying again later may work
            kind = RetryableStorageError if _unreachable(error) else StorageError
            raise kind(
                f"cannot connect to PostgreSQL at {self.url.host}:{self.url.port}/{self.url.database}: "
                f"{self.url.redact(error).strip()}"
            ) from error
        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            kwargs={**self.conninfo(), "autocommit": True},  # see _OwnConnection
            connection_class=_OwnConnection,
            min_size=1,
            max_size=self.url.pool_size,
            open=False,
            name=f"hivemind-{self.prefix}",
            timeout=30.0,
            reconnect_timeout=3600.0,
        )
        try:
            await pool.open(wait=True, timeout=float(self.url.options.get("connect_timeout", 10)))
        except psycopg_pool.PoolTimeout as error:
            await pool.close()
            self._users -= 1
            raise RetryableStorageError(
                f"cannot connect to PostgreSQL at {self.url.host}:{self.url.port}/{self.url.database}: "
                f"{self.url.redact(error)}"
            ) from error
        self._pool = pool

    async def close_pool(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            # idle connections are closed at once; the pool's workers (a reconnect attempt to a server
            # that does not answer) get the bound, connections still in use close with their task
            await pool.close(timeout=CLOSE_WAIT)

    async def acquire(self) -> Any:
        assert self._pool is not None
        try:
            return await self._pool.getconn()
        except psycopg_pool.PoolTimeout as error:
            raise StorageError(f"no PostgreSQL connection available: {self.url.redact(error)}") from error

    async def release(self, raw: Any, *, discard: bool) -> None:
        if self._pool is None:
            await raw.close()
            return
        if discard:
            await raw.close()
        await self._pool.putconn(raw)

    def wrap(self, raw: Any) -> Connection:
        if isinstance(raw, psycopg.Connection):  # an application's sync connection
            return _PgConnection(cast(Any, _BlockingPg(raw)), self.channel)
        return _PgConnection(raw, self.channel)

    async def commit(self, raw: Any) -> None:
        await raw.commit()

    async def rollback(self, raw: Any) -> None:
        await raw.rollback()

    def is_driver_error(self, error: BaseException) -> bool:
        return isinstance(error, psycopg.Error)

    def is_retryable(self, error: BaseException) -> bool:
        if isinstance(error, psycopg.OperationalError | psycopg.errors.SerializationFailure):
            return True
        sqlstate = getattr(error, "sqlstate", None)
        return sqlstate in _RETRY_SQLSTATES

    def connection_lost(self, raw: Any) -> bool:
        return bool(raw.broken or raw.closed)

    def check_external(self, connection: object) -> None:
        if not isinstance(connection, psycopg.AsyncConnection | psycopg.Connection):
            raise ConfigurationError(
                "a PostgreSQL environment runs on a psycopg (3) connection, async or sync, "
                f"got {type(connection).__name__}"
            )
        if connection.autocommit and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            raise TransactionError(
                "the connection is in autocommit mode outside a transaction: jobs would commit on their own; "
                "use `async with connection.transaction():` or a connection with autocommit=False"
            )

    async def migrate(
        self, queries: QueryBook, migrations: list[Migration], *, apply: bool, environment: str, where: str
    ) -> tuple[int, list[Migration]]:
        assert self._pool is not None
        # One transaction: PostgreSQL's DDL is transactional, so a migration that fails half-way
        # leaves nothing behind.
        async with self._pool.connection() as raw, raw.transaction():
            # one lock per schema, not per prefix: environments whose names could clash (case,
            # overlap) then never check and create at the same time
            lock_key = int(
                hashlib.sha1(f"hivemind-migrate:{self.schema}".encode(), usedforsecurity=False).hexdigest()[:15], 16
            )
            await raw.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            wanted = [name.lower() for name in prefixed_names(_PACKAGE)]
            cursor = await raw.execute(
                "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND lower(c.relname) = ANY(%s)",
                (self.schema, [self.prefix.lower() + name for name in wanted]),
            )
            existing = [str(row[0]) for row in await cursor.fetchall()]
            if not check_table_names(_PACKAGE, environment, self.prefix, existing, where=where):
                if not apply:
                    return 0, migrations
                await raw.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema)))
                await raw.execute(queries["schema_version_create"])
            # migrations name their tables without the schema: make it the only one searched
            await raw.execute("SELECT set_config('search_path', %s, true)", (f'"{self.schema}"',))
            row = await (await raw.execute(queries["schema_version_current"])).fetchone()
            current = int(row[0]) if row else 0
            owned_from = owner_version(migrations)
            if current >= owned_from:
                owner = await (await raw.execute(queries["schema_owner_get"])).fetchone()
                check_owner(owner, environment, self.prefix, where=where)
            pending = migrations[current:]
            if not apply:
                return current, pending
            for migration in pending:
                for statement in migration.statements(self.prefix):
                    await raw.execute(statement)
                await raw.execute(
                    queries["schema_version_insert"], {"version": migration.version, "name": migration.name}
                )
            await raw.execute(queries["schema_owner_claim"], {"environment": environment, "table_prefix": self.prefix})
            return current, pending

    def describe(self) -> dict[str, str]:
        return {"schema": self.schema, "channel": self.channel}

    def preamble(self) -> list[SQL]:
        return [SQL(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'), SQL(f'SET search_path TO "{self.schema}"')]


class PostgresStorage(ServerStorage):
    """One environment's tables (``table_prefix``) in one PostgreSQL schema."""

    package = _PACKAGE

    def __init__(self, url: str, *, environment: str, table_prefix: str) -> None:
        parsed = ServerURL.parse(url, known_options=_LIBPQ_OPTIONS | {"schema"}, default_port=5432)
        schema = parsed.options.pop("schema", "public")
        if not _SCHEMA.fullmatch(schema):
            raise ConfigurationError(f"schema must be a letter or _ then up to 62 of A-Z a-z 0-9 _, got {schema!r}")
        self.driver = self._pg = _PgDriver(parsed, schema, table_prefix)
        super().__init__(url, environment=environment, table_prefix=table_prefix, auto_migrate=parsed.auto_migrate)
        self._changes = 0
        self._callbacks: list[Callable[[], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._finished_callbacks: list[Callable[[frozenset[int] | None], None]] = []
        self._finished_listener: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, *, environment: str, table_prefix: str) -> PostgresStorage:
        return cls(url, environment=environment, table_prefix=table_prefix)

    async def close(self) -> None:
        for listener in (self._listener, self._finished_listener):
            if listener is not None:
                await cancel_within(listener, CLOSE_WAIT)
        self._listener = self._finished_listener = None
        await super().close()

    def subscribe_changes(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """``callback`` runs for every notification (and after every listener reconnect)."""
        self._start_listener()
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def _changed(self) -> None:
        self._changes += 1
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                _log.exception("a change callback failed")

    def change_marker(self) -> object | None:
        """A counter of notifications received (and of listener reconnects)."""
        self._start_listener()
        return self._changes

    def _start_listener(self) -> None:
        if self._listener is None and self._open:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(self._pg.channel, lambda _payload: self._changed(), self._changed),
                name=f"hivemind-listen-{self.environment}",
            )

    def subscribe_finished(self, callback: Callable[[frozenset[int] | None], None]) -> Callable[[], None] | None:
        """``callback(job_ids)`` runs for every batch of jobs that reached a final state (None:
        any job may have, after a reconnect or when the ids did not fit a notification). Every
        subscriber shares one listening connection, opened at the first subscription."""
        if self._finished_listener is None and self._open:
            self._finished_listener = asyncio.get_running_loop().create_task(
                self._listen(
                    _finished_channel(self._pg.channel),
                    lambda payload: self._finished(_finished_ids(payload)),
                    lambda: self._finished(None),
                ),
                name=f"hivemind-listen-finished-{self.environment}",
            )
        self._finished_callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._finished_callbacks.remove(callback)

        return unsubscribe

    def _finished(self, job_ids: frozenset[int] | None) -> None:
        for callback in list(self._finished_callbacks):
            try:
                callback(job_ids)
            except Exception:
                _log.exception("a finished-jobs callback failed")

    async def _listen(self, channel_name: str, received: Callable[[str], None], missed: Callable[[], None]) -> None:
        """LISTEN on ``channel_name``: ``received(payload)`` for each notification, ``missed()``
        after every (re)connect and lost connection (anything may have been missed meanwhile)."""
        failures = 0
        channel = pgsql.Identifier(channel_name)
        while True:
            try:
                connection = await self._pg.connect(autocommit=True)
            except psycopg.Error as error:
                failures += 1
                delay = min(10.0, 0.2 * 2**failures) * random.uniform(0.8, 1.2)
                _log.warning("LISTEN connection failed (%s); retrying in %.1f s", self.redact(error), delay)
                await asyncio.sleep(delay)
                continue
            try:
                async with connection:
                    await connection.execute(pgsql.SQL("LISTEN {}").format(channel))
                    failures = 0
                    missed()  # anything may have been missed while not listening
                    async for notification in connection.notifies():
                        received(notification.payload)
            except psycopg.Error as error:
                missed()
                failures += 1
                delay = min(10.0, 0.2 * 2**failures) * random.uniform(0.8, 1.2)
                _log.warning("LISTEN connection lost (%s); reconnecting in %.1f s", self.redact(error), delay)
                await asyncio.sleep(delay)
