"""MySQL / MariaDB storage: asyncmy with a connection pool.

URL: ``mysql://user:password@host:port/database`` (also ``mariadb://``), with optional query
parameters ``auto_migrate=true`` (create or upgrade the tables on open; otherwise ``hivemind db
upgrade``), ``pool_size`` (default 10) and ``connect_timeout`` (seconds). Environments sharing a
database are kept apart by their table prefix.

Sessions run in UTC with READ COMMITTED isolation (fewer gap locks for a queue table), and
report matched rather than changed rows. Claims are ``SELECT … FOR UPDATE SKIP LOCKED`` (MySQL
8+, MariaDB 10.6+) followed by a ``DELETE`` of the queue entries and an ``UPDATE`` of the jobs.
There is no notification channel: idle colonies probe the highest job id with one small query
(:meth:`MySQLStorage.probe_changes`, on a connection of its own) to start jobs other processes
created, poll with jitter for everything else, and wake at once for enqueues made in their own
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import logging
import math
import re
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, cast

from hivemind_jobs.core.codec import datetime_text
from hivemind_jobs.core.limits import Limits, utf8_size
from hivemind_jobs.errors import ConfigurationError, RetryableStorageError, StorageError, TransactionError
from hivemind_jobs.storage.dialect import MYSQL
from hivemind_jobs.storage.params import JobRecord, PropertyRow, StateRow
from hivemind_jobs.storage.protocol import Capabilities, JobInsert, PendingInserts, QueuePointer
from hivemind_jobs.storage.rows import (
    Times,
    histories_by_job,
    job_rows,
    property_params,
    same,
    started_record,
    state_params,
)
from hivemind_jobs.storage.server.base import (
    CLOSE_WAIT,
    BlockingSession,
    Connection,
    Driver,
    ServerStorage,
    ServerURL,
)
from hivemind_jobs.storage.sql import (
    SQL,
    Migration,
    QueryBook,
    check_owner,
    check_table_names,
    owner_version,
)

try:
    import asyncmy
    import asyncmy.cursors
    import asyncmy.errors
    import pymysql
    from pymysql.constants import CLIENT
except ImportError as missing:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError("the MySQL backend needs asyncmy: pip install 'hivemind-jobs[mysql]'") from missing

__all__ = ["MySQLStorage"]

_PACKAGE = __name__.rpartition(".")[0]
_log = logging.getLogger("hivemind_jobs.storage.mysql")
#: deadlock, lock wait timeout, server gone / lost / shutting down, cannot connect
_RETRY_CODES = {1213, 1205, 2006, 2013, 2003, 1053, 1927, 4031}
_DATABASE = re.compile(r"[A-Za-z0-9_$-]{1,64}")
_INSERT_CHUNK = 500
_INSERT_BYTES = 4_000_000
#: an INSERT whose row is placeholders only (the drivers' test for a multi-row executemany): its
#: head, row and suffix
_INSERT_VALUES = re.compile(
    r"\s*((?:INSERT|REPLACE)\b.+\bVALUES?\s*)"
    r"(\(\s*%\(\w+\)s\s*(?:,\s*%\(\w+\)s\s*)*\))"
    r"(\s*(?:(?:AS|ON DUPLICATE).*)?);?\s*\Z",
    re.IGNORECASE | re.DOTALL,
)
#: how long one change probe may take before its connection is given up
_PROBE_TIMEOUT = 5.0
#: the session status bit of an open transaction (the protocol's SERVER_STATUS_IN_TRANS)
_SERVER_STATUS_IN_TRANS = 1


#: what the drivers raise: asyncmy (HiveMind's own pool) and pymysql (aiomysql, for an
#: application's connection, and the blocking sessions)
_DRIVER_ERRORS = (asyncmy.errors.Error, pymysql.Error)
_INTERFACE_ERRORS = (asyncmy.errors.InterfaceError, pymysql.err.InterfaceError)
_INTEGRITY_ERRORS = (asyncmy.errors.IntegrityError, pymysql.err.IntegrityError)


def _quote(value: str, conn: Any) -> str:
    """``value`` as a quoted string literal. MySQL needs only the quote and the backslash escaped
    inside one (the drivers escape newlines, double quotes and more for readable logs); a value
    with none of them, nor a NUL, is sent as it is, the same literal under every SQL mode (most
    values: JSON text, names, ids), which spares the drivers' character-by-character escaping;
    any other is escaped by ``conn`` as the session's NO_BACKSLASH_ESCAPES says."""
    if "'" in value or "\\" in value or "\0" in value:
        return "'" + str(conn.escape_string(value)) + "'"
    return "'" + value + "'"


def _escape(value: Any, conn: Any) -> Any:
    """``value`` as an SQL literal, escaped by ``conn`` (an asyncmy or aiomysql connection, whose
    ``escape_string`` follows the session's NO_BACKSLASH_ESCAPES); a list or tuple as ``(a, b, c)``
    for ``IN`` (an empty one as ``(NULL)``, which matches nothing); bytes as a hex literal."""
    kind = type(value)
    # the usual types written as the drivers write them, without their per-value type dispatch
    if kind is int:
        return str(value)
    if value is None:
        return "NULL"
    if kind is str:
        return _quote(value, conn)
    if kind is datetime and value.tzinfo is None:
        return "'" + value.isoformat(" ") + "'"
    if kind is bool:
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return "(" + ",".join([_escape(item, conn) for item in value]) + ")" if value else "(NULL)"
    if isinstance(value, bytes | bytearray):
        # a hex literal: the same under every SQL mode and driver (aiomysql's escaping of bytes
        # fails with current PyMySQL; asyncmy's ignores NO_BACKSLASH_ESCAPES)
        return "X'" + value.hex() + "'"
    return conn.escape(value)


def _render(sql: str, params: Mapping[str, Any] | None, conn: Any) -> str:
    """The statement with its ``%(name)s`` placeholders replaced by the escaped values (sent as
    text: the drivers' own cursors then skip their parameter handling)."""
    if params is None:
        return sql
    return sql % {key: _escape(value, conn) for key, value in params.items()}


class _BlockingMySQLCursor:
    """A sync DB-API cursor with the awaitable calls :class:`_MySQLConnection` makes."""

    __slots__ = ("cursor",)

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    async def __aenter__(self) -> _BlockingMySQLCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cursor.close()

    @property
    def lastrowid(self) -> Any:
        return self.cursor.lastrowid

    @property
    def description(self) -> Any:
        return self.cursor.description

    async def execute(self, statement: str) -> int:
        return int(self.cursor.execute(statement) or 0)

    async def fetchall(self) -> list[Any]:
        return list(self.cursor.fetchall())

    async def fetchone(self) -> Any:
        return self.cursor.fetchone()

    async def nextset(self) -> bool:
        return bool(self.cursor.nextset())


class _BlockingMySQL:
    """An application's sync MySQL connection (PyMySQL, or mysqlclient as a web framework such as
    Django opens it) with the awaitable calls :class:`_MySQLConnection` makes: each runs at once,
    on the calling thread."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def escape_string(self, value: str) -> str:
        """Escaped as the session needs (PyMySQL and mysqlclient follow its NO_BACKSLASH_ESCAPES)."""
        if isinstance(self.raw, pymysql.connections.Connection):
            return str(self.raw.escape(value))[1:-1]  # PyMySQL answers the quoted literal
        escaped = self.raw.escape_string(value)  # mysqlclient: bytes
        return escaped.decode() if isinstance(escaped, bytes) else str(escaped)

    def cursor(self, cursor_class: Any = None) -> _BlockingMySQLCursor:
        del cursor_class  # the connection's default cursor: Django and PyMySQL keep it tuple-returning
        return _BlockingMySQLCursor(self.raw.cursor())

    def close(self) -> None:
        self.raw.close()


def _is_blocking_mysql(connection: object) -> bool:
    """A PyMySQL connection, or mysqlclient's (``MySQLdb``), when that is imported."""
    if isinstance(connection, pymysql.connections.Connection):
        return True
    mysqldb = sys.modules.get("MySQLdb.connections")
    return mysqldb is not None and isinstance(connection, mysqldb.Connection)


def _cursor_class(raw: Any) -> Any:
    """The tuple-returning cursor of ``raw``'s driver (an application's aiomysql connection may
    default to another one)."""
    if isinstance(raw, asyncmy.Connection):
        return asyncmy.cursors.Cursor
    if isinstance(raw, _BlockingMySQL):
        return None
    import aiomysql  # not a dependency: only an application's aiomysql connection gets here

    return aiomysql.Cursor


class _MigrationCursor(asyncmy.cursors.Cursor):
    """For migrations: re-running an idempotent statement (the resumption of a migration that
    stopped half-way) makes the server note "Table ... already exists"; expected, so logged at
    debug level instead of as warnings."""

    async def _show_warnings(self, conn: Any) -> None:
        if self._result and self._result.has_next:  # type: ignore[attr-defined]  # the stubs omit it
            return
        for warning in await conn.show_warnings() or ():
            _log.debug("MySQL migration note: %s", warning[-1])


#: "Duplicate column name" and "Duplicate key name": an ALTER TABLE that adds columns or indexes
#: fails so when it ran before (MySQL has no ADD COLUMN IF NOT EXISTS)
_ALTER_DONE = (1060, 1061)


def applied_before(statement: str, error: BaseException) -> bool:
    """Whether ``error`` says that the migration statement ran before: an ``ALTER TABLE`` (one
    statement: all of it or nothing) that a stopped migration already applied."""
    code = error.args[0] if error.args else None
    return statement.lstrip().upper().startswith("ALTER TABLE") and code in _ALTER_DONE


async def _run_migration_statement(cursor: Any, statement: str) -> None:
    """Run one migration statement; one that :func:`applied_before` counts as done."""
    try:
        await cursor.execute(statement)
    except _DRIVER_ERRORS as error:
        if not applied_before(statement, error):
            raise
        _log.debug("MySQL migration note: %s (applied before)", error)


def _started_row(
    row: Sequence[Any],
    number: int | None,
    now: datetime,
    *,
    needed: bool = False,
    states: tuple[StateRow, ...] = (),
    properties: tuple[PropertyRow, ...] = (),
) -> tuple[Any, ...]:
    """A row of ``queue_claim_select`` in the shape of PostgreSQL's ``queue_claim_start_lean``
    (see :meth:`_MySQLConnection.claim_start_rows`)."""
    return (
        *row[:6],
        number,
        now,
        needed,
        row[17],  # the job's queue, priority, call, middleware, creation and last change
        row[18],
        row[19],
        row[20],
        row[21],
        row[16],
        row[8],  # its state's name, sequence and time before the start
        row[7],
        row[15],
        states,
        properties,
    )


def _derived(rows: Sequence[Mapping[str, Any]], conn: Any) -> str:
    """A derived table of ``rows`` (dicts with the same keys): ``SELECT ... UNION ALL SELECT ...``,
    the columns named by the first."""
    keys = list(rows[0])
    first = rows[0]
    selects = ["SELECT " + ", ".join(f"{_escape(first[key], conn)} AS `{key}`" for key in keys)]
    selects += ["SELECT " + ", ".join([_escape(row[key], conn) for key in keys]) for row in rows[1:]]
    return " UNION ALL ".join(selects)


def _naive_utc(value: datetime) -> datetime:
    """An aware datetime as the naive UTC value a DATETIME column holds (the session runs in UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


_DUPLICATE_KEY = 1062  # ER_DUP_ENTRY
_PACKET_TOO_LARGE = 1153  # ER_NET_PACKET_TOO_LARGE
#: server gone away / lost connection: what a server that dropped an oversized packet looks like
_CONNECTION_GONE = {2006, 2013}
#: a connection attempt that got no answer: no socket, refused, host unknown, gone, lost
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}
#: one protocol packet; a longer statement is split, and a server with an unknown limit may refuse it
_WIRE_PACKET = 16 * 1024 * 1024 - 1


class _MySQLConnection(Connection):
    """Every statement failure goes through :meth:`_MySQLDriver.packet_refusal`: a
    statement over the server's ``max_allowed_packet`` otherwise surfaces as a lost connection or
    a "Packet sequence number wrong", retried as if the server had gone away."""

    __slots__ = ("cursor_class", "driver", "pending", "raw")
    dialect = MYSQL
    starts_in_claim = True
    times = Times(point=same, span=same, bind=_naive_utc, encode=_naive_utc)

    def __init__(self, raw: Any, driver: _MySQLDriver) -> None:
        self.raw = raw
        self.driver = driver
        self.cursor_class = _cursor_class(raw)
        #: inside :meth:`pipeline`: the statements waiting to be sent as one script, each with the
        #: list its rows go to (None: not read); None outside
        self.pending: list[tuple[str, list[list[tuple[Any, ...]]] | None]] | None = None

    async def _run(self, cursor: Any, statement: str, *, queue: bool = True) -> int:
        """Send one rendered statement; a refused oversized one raises a worded StorageError.
        Inside :meth:`pipeline` (and ``queue``) it waits for the script instead: 0 rows reported."""
        if self.pending is not None:
            if queue:
                self._queue(statement, None)
                return 0
            await self._flush()  # what was queued before it runs first
        try:
            return int(await cursor.execute(statement) or 0)
        except _DRIVER_ERRORS as error:
            self._raise_if_refused(error, statement)
            raise

    def _committed_in_script(self) -> None:
        """The COMMIT at the end of a script ran: the transaction is over. asyncmy keeps the
        session's status of the script's last result that had status bits; a COMMIT's answer has
        none (autocommit is off), so the session still looks in a transaction, and its pool would
        close the connection when it is given back instead of keeping it (a new connection, with
        its handshake and session settings, for the next transaction). Its status is set to what
        the server said."""
        self.committed = True
        if isinstance(self.raw, asyncmy.Connection):
            session: Any = self.raw  # its typing does not show the status
            session.server_status &= ~_SERVER_STATUS_IN_TRANS

    def pipeline(self) -> AbstractAsyncContextManager[object]:
        """The statements run inside are sent together as one multi-statement script when the
        block ends (one round trip), on HiveMind's own sessions; statement by statement on an
        application's connection, whose client flags are its own. Their row counts are not
        reported (0), as with PostgreSQL's pipeline mode; a statement that must report them
        (:meth:`insert_if_absent`, a SELECT) sends what is queued first."""
        if self.external or self.pending is not None:
            return contextlib.nullcontext()
        return self._pipelined()

    @contextlib.asynccontextmanager
    async def _pipelined(self) -> AsyncIterator[None]:
        self.pending = []
        try:
            yield None
            await self._flush()
        finally:
            self.pending = None

    def _queue(self, statement: str, rows: list[list[tuple[Any, ...]]] | None) -> None:
        assert self.pending is not None
        self.pending.append((statement.strip().rstrip(";"), rows))

    async def _flush(self) -> None:
        """Send the queued statements, in scripts of at most ``_INSERT_BYTES`` characters and a
        quarter of the server's ``max_allowed_packet`` (a character is at most four bytes), a longer
        statement alone, each one round trip; the rows of each read statement go to its list.
        Statements that each fit the server's packet never make a script it refuses."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        packet = self.driver.max_allowed_packet
        budget = _INSERT_BYTES if packet is None else min(_INSERT_BYTES, packet // 4)
        start = size = 0
        for end, (statement, _) in enumerate(pending):
            if end > start and size + len(statement) > budget:
                await self._script(pending[start:end])
                start, size = end, 0
            size += len(statement) + 3
        await self._script(pending[start:])

    async def _script(self, part: Sequence[tuple[str, list[list[tuple[Any, ...]]] | None]]) -> None:
        # each ";" on a line of its own: a statement's last line may end in a "--" comment
        script = "\n;\n".join(statement for statement, _ in part)
        async with self.raw.cursor(self.cursor_class) as cursor:
            try:
                await cursor.execute(script)
                for index, (statement, rows) in enumerate(part):
                    if index:
                        await cursor.nextset()
                    if rows is not None:
                        rows.append(list(await cursor.fetchall()))
                    elif statement == "COMMIT":
                        self._committed_in_script()
            except _DRIVER_ERRORS as error:
                self._raise_if_refused(error, script)
                raise

    async def commit_in_pipeline(self) -> bool:
        """The COMMIT at the end of the pipeline's script (see :meth:`Connection.commit_in_pipeline`)."""
        if self.pending is None or not (self.sole or self.last):
            return False
        self._queue("COMMIT", None)
        return True

    async def fetch_later(self, sql: SQL, params: dict[str, Any]) -> Callable[[], Awaitable[list[tuple[Any, ...]]]]:
        if self.pending is None:
            return await super().fetch_later(sql, params)
        found: list[list[tuple[Any, ...]]] = []
        self._queue(_render(sql, params, self.raw), found)

        async def read() -> list[tuple[Any, ...]]:
            return found[0]  # the pipeline's script has run

        return read

    async def fetch_each(
        self, queries: Sequence[tuple[SQL, dict[str, Any]]], *, writes: Sequence[tuple[SQL, dict[str, Any]]] = ()
    ) -> list[list[tuple[Any, ...]]]:
        """The writes and the queries as one script where :meth:`pipeline` sends scripts."""
        if self.external:
            return await super().fetch_each(queries, writes=writes)
        async with self.pipeline():
            for sql, params in writes:
                await self.execute(sql, params)
            reads = [await self.fetch_later(sql, params) for sql, params in queries]
            await self._flush()  # inside an enclosing pipeline too: the rows are wanted now
        return [await read() for read in reads]

    async def claim_start_rows(
        self, q: Mapping[str, SQL], params: dict[str, Any], *, commit: bool = False
    ) -> list[tuple[Any, ...]]:
        """Rows shaped as PostgreSQL's ``queue_claim_start_lean`` (its history and properties
        built, not JSON), in two round trips: the walk (``queue_claim_select``), then one
        script that reads the started jobs' histories and properties, deletes the entries read,
        writes each job's start (``queue_start_claimed``: its execution, state and lock) and its
        Executing row, and commits with ``commit``. When the group needs the general path (a job
        with limits, or one not Enqueued) nothing is written and its rows stay locked for it."""
        picked = await self.claim_rows(q, {"queues": params["queues"], "limit": params["limit"]})
        if not picked:
            return []
        now = picked[0][9]
        # a claimed job with limits (a key or a rate), or one not Enqueued: the general path's
        if any(
            row[3] == row[6] and (row[10] is not None or row[12] is not None or row[8] != "Enqueued") for row in picked
        ):
            return [_started_row(row, None, now, needed=True) for row in picked]
        ready = [row for row in picked if row[3] == row[6]]  # the others: stale entries, deleted
        ids = [row[0] for row in ready]
        owner = params["owner"]
        execution_ids, before, after = params["execution_ids"], params["fields_before"], params["fields_after"]
        jobs: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        for index, row in enumerate(ready, params["offset"]):
            sequence = row[7] + 1
            jobs.append(
                {
                    "job_id": row[0],
                    "execution_id": execution_ids[index],
                    "state_name": "Executing",
                    "state_sequence": sequence,
                    "state_elected_at": now,
                    "owner": owner,
                    "now": now,
                }
            )
            fields = before[index] + datetime_text(self.dt(row[4])) + after[index]
            states.append(
                {
                    "job_id": row[0],
                    "sequence": sequence,
                    "name": "Executing",
                    "elected_at": now,
                    "reason": None,
                    "fields": fields,
                }
            )
        async with self.pipeline():
            # read before the writes: each history as it was before the start (no job ready, as
            # when every entry read was stale: the reads match nothing and nothing is written)
            read_history = await self.fetch_later(q["job_state_select_many"], {"job_ids": ids})
            read_properties = await self.fetch_later(q["job_property_select_many"], {"job_ids": ids})
            await self.execute(q["queue_take"], {"job_ids": sorted(row[0] for row in picked)})
            await self.write_rows(q, "queue_start_claimed", jobs)
            await self.write_rows(q, "job_state_insert", states)
            if commit:
                await self.commit_in_pipeline()
        histories, found = histories_by_job(await read_history(), await read_properties(), self.dt)
        rows = [
            _started_row(
                row, number, now, states=tuple(histories.get(row[0], ())), properties=tuple(found.get(row[0], ()))
            )
            for number, row in enumerate(ready, params["offset"] + 1)
        ]
        rows += [_started_row(row, None, now) for row in picked if row[3] != row[6]]
        return rows

    def started_record(self, row: tuple[Any, ...], owner: str, now: datetime) -> JobRecord:
        return started_record(row, owner, now, self.dt, row[18], row[19])

    async def revert_starts(self, q: Mapping[str, SQL], params: Sequence[dict[str, Any]]) -> None:
        async with self.pipeline():
            for values in params:
                await self.execute(q["queue_start_revert"], values)
                await self.execute(q["queue_start_revert_state"], values)

    def _raise_if_refused(self, error: Exception, statement: str) -> None:
        """Raise the worded refusal of an oversized ``statement``, closing the session first: after
        a refused packet its protocol state is unknown ("Packet sequence number wrong" on the next
        statement), so the pool must not hand it out again."""
        refusal = self.driver.packet_refusal(error, statement)
        if refusal is not None:
            self.raw.close()
            raise refusal from error

    async def fetchall(self, sql: SQL, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        async with self.raw.cursor(self.cursor_class) as cursor:
            await self._run(cursor, _render(sql, params, self.raw), queue=False)
            return list(await cursor.fetchall())

    async def execute(self, sql: SQL, params: dict[str, Any] | None = None) -> int:
        async with self.raw.cursor(self.cursor_class) as cursor:
            return await self._run(cursor, _render(sql, params, self.raw))

    async def executemany(self, sql: SQL, params: Sequence[dict[str, Any]]) -> int:
        """An ``INSERT ... VALUES`` of placeholders as multi-row INSERTs (as the drivers do),
        anything else statement by statement; the rows it matched or wrote."""
        if not params:
            return 0
        count = 0
        async with self.raw.cursor(self.cursor_class) as cursor:
            match = _INSERT_VALUES.match(sql)
            if match:
                head, row, suffix = match.groups()
                for statement, _ in _multi_row(head, row, suffix, params, self.raw):
                    count += await self._run(cursor, statement)
            else:
                for values in params:
                    count += await self._run(cursor, _render(sql, values, self.raw))
        return count

    async def write_rows(self, q: Mapping[str, SQL], name: str, rows: Sequence[dict[str, Any]]) -> None:
        """A batch of saves as one UPDATE joined with a derived table of the rows (``<name>_set``);
        other batch writes as multi-row INSERTs."""
        set_sql = q.get(f"{name}_set")
        if set_sql is None or len(rows) < 2:
            await self.executemany(q[name], rows)
            return
        async with self.raw.cursor(self.cursor_class) as cursor:
            await self._run(cursor, set_sql.replace("%(rows)s", _derived(rows, self.raw)))

    async def insert_if_absent(self, sql: SQL, params: dict[str, Any]) -> bool:
        # INSERT IGNORE would warn and ON DUPLICATE KEY counts a found row (CLIENT.FOUND_ROWS) as
        # changed; a duplicate key only fails the statement, not the transaction.
        try:
            async with self.raw.cursor(self.cursor_class) as cursor:
                return await self._run(cursor, _render(sql, params, self.raw), queue=False) == 1
        except _INTEGRITY_ERRORS as error:
            if error.args and error.args[0] == _DUPLICATE_KEY:
                return False
            raise

    async def insert_id(self, sql: SQL, params: dict[str, Any]) -> int:
        async with self.raw.cursor(self.cursor_class) as cursor:
            await self._run(cursor, _render(sql, params, self.raw), queue=False)
            return int(cursor.lastrowid)

    async def insert_jobs(self, q: Mapping[str, SQL], params: Sequence[dict[str, Any]]) -> list[int]:
        """Multi-row INSERTs; a statement's rows get consecutive ids from its first one, which is
        checked against the execution ids (and looked up if the server interleaved them)."""
        head, row, suffix = _values_template(q["job_insert"])
        lookup = q["job_ids_by_execution"]
        ids: list[int] = []
        start = 0
        async with self.raw.cursor(self.cursor_class) as cursor:
            for statement, end in _multi_row(head, row, suffix, params, self.raw):
                await self._run(cursor, statement, queue=False)
                first = int(cursor.lastrowid)
                chunk = params[start:end]
                start = end
                if len(chunk) == 1:  # one row: the id the server reported is exactly its id
                    ids.append(first)
                    continue
                edges = (chunk[0]["execution_id"], chunk[-1]["execution_id"])
                await cursor.execute(_render(lookup, {"first_id": first, "execution_ids": edges}, self.raw))
                found = {execution: job_id for job_id, execution in await cursor.fetchall()}
                if found.get(edges[0]) == first and found.get(edges[1]) == first + len(chunk) - 1:
                    ids.extend(range(first, first + len(chunk)))
                    continue
                # not consecutive (interleaved auto-increment): look every id up
                executions = tuple(values["execution_id"] for values in chunk)
                await cursor.execute(_render(lookup, {"first_id": first, "execution_ids": executions}, self.raw))
                by_execution = {execution: job_id for job_id, execution in await cursor.fetchall()}
                if len(by_execution) != len(chunk):
                    raise StorageError("MySQL did not report the ids of inserted jobs; nothing was written")
                ids.extend(by_execution[execution] for execution in executions)
        return ids

    async def insert_new_jobs(
        self, q: Mapping[str, SQL], params: Sequence[JobInsert]
    ) -> tuple[list[int], datetime] | None:
        """The jobs and everything with them as one multi-statement round trip (and the COMMIT in
        it when this is the transaction's only operation). The states, properties, queue entries
        and links name their job as the first id of its INSERT plus its position, which needs the
        ids of a multi-row INSERT to be consecutive: so only where the server guarantees it
        (``innodb_autoinc_lock_mode`` 0 or 1, ``auto_increment_increment`` 1, checked again by the
        script itself) or for one job; otherwise None (table by table).

        A large batch goes as several scripts (:func:`_pipeline_parts`), each rendered while the
        server runs the one before it; the first reads the database clock for all of them, the
        last commits when the transaction ends with it. :class:`PendingInserts` (a batch in a
        transaction of its own) are built part by part the same way (:func:`_built_parts`)."""
        if self.external or (len(params) > 1 and not self.driver.consecutive_ids):
            return None
        await self._flush()  # inside a pipeline: what was queued runs first
        compound = self.driver.compound_statements
        if compound and self.sole and len(params) == 1 and not isinstance(params, PendingInserts):
            plain = await self._insert_plain(q, params[0])
            if plain is not None:
                self._committed_in_script()
                return plain
        parts: Iterator[tuple[Sequence[JobInsert], bool]]
        if isinstance(params, PendingInserts):
            if len(params) >= 2 * _PIPELINE_PART and 2 * params.most_bytes + _SCRIPT_SLACK <= _INSERT_BYTES:
                parts = _built_parts(params)
            else:
                params = params.rows(0, len(params))
                parts = _whole_parts(params)
        else:
            parts = _whole_parts(params)
        found = await self._insert_parts(q, parts, compound)
        if found is None:
            return None
        if self.sole:
            self._committed_in_script()
        ids: list[int] = []
        for rows, row in found:
            firsts = row[1:]
            ids.extend(int(firsts[chunk]) + position for chunk, position in _positions(rows))
        return ids, self.dt(found[0][1][0])

    async def _insert_plain(self, q: Mapping[str, SQL], job: JobInsert) -> tuple[list[int], datetime] | None:
        """MariaDB, a transaction of one common create (see :func:`_plain_values`): ``EXECUTE`` of
        the compound statement :func:`_plain_statement` prepared on this session, its values as
        literals: the server parses a line of values instead of the whole script (292 → 254 µs of
        its CPU per create, ``bench/mysql_scripts.py``). Prepared the first time a session runs it
        (a new connection, or one whose statements the server dropped), in the same round trip.
        None: not a common create, or too long for one statement (the script then)."""
        values = _plain_values(job)
        if values is None:
            return None
        name, text, slots = _plain_statement(q["job_insert"], q["job_state_insert"], q["queue_upsert"])
        literal = _Literals(self.raw, remember=False).fresh
        execute = f"EXECUTE {name} USING {', '.join([literal(values[row][key]) for row, key in slots])}"
        if len(execute) + len(text) > _INSERT_BYTES:
            return None
        try:
            row = await self._insert_part(execute)
        except _DRIVER_ERRORS as error:
            if not error.args or error.args[0] != _UNKNOWN_STATEMENT:
                raise
            # nothing ran: the session has not prepared it yet
            row = await self._insert_part(f"PREPARE {name} FROM {_quote(text, self.raw)};\n{execute}")
        return [int(row[1])], self.dt(row[0])

    async def _insert_parts(
        self, q: Mapping[str, SQL], parts: Iterator[tuple[Sequence[JobInsert], bool]], compound: bool
    ) -> list[tuple[Sequence[JobInsert], Any]] | None:
        """The scripts of a batch, each rendered (and, from :func:`_built_parts`, built) while the
        server runs the one before it: per script, its jobs and the row it answered (None: the
        first script is too long for one statement). ``parts``: the jobs of each script and
        whether it is the last."""
        written: list[tuple[Sequence[JobInsert], Any]] = []
        pending: asyncio.Future[Any] | None = None
        sent: Sequence[JobInsert] = ()
        done = 0
        try:
            for index, (rows, last) in enumerate(parts):
                script = _insert_script(
                    q, rows, self.raw, commit=self.sole and last, compound=compound, clock=index == 0
                )
                if script is None:
                    if index == 0:
                        return None
                    raise StorageError(f"MySQL: the script of jobs {done}-{done + len(rows)} of a batch is too long")
                done += len(rows)
                if pending is None and last:  # the only script: it runs here, with no task of its own
                    return [(rows, await self._insert_part(script))]
                if pending is not None:
                    written.append((sent, await pending))
                sent, pending = rows, asyncio.ensure_future(self._insert_part(script))
                if not last:
                    await asyncio.sleep(0)  # it sends its script: the next one is built and rendered meanwhile
            assert pending is not None
            written.append((sent, await pending))
        except BaseException:
            if pending is not None and not pending.done():
                pending.cancel()  # the session is closed by the transaction (its state is unknown)
                await asyncio.wait([pending])
            raise
        return written

    async def _insert_part(self, script: str) -> Any:
        """Run a script of :meth:`insert_new_jobs`; the row of its last SELECT."""
        async with self.raw.cursor(self.cursor_class) as cursor:
            try:
                await cursor.execute(script)
                row: Any = await cursor.fetchone() if cursor.description else None
                while await cursor.nextset():
                    if cursor.description:
                        row = await cursor.fetchone()
            except _DRIVER_ERRORS as error:
                self._raise_if_refused(error, script)
                raise
        assert row is not None
        return row

    def dt(self, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC)

    def bind_dt(self, value: datetime) -> Any:
        return _naive_utc(value)


@functools.lru_cache(maxsize=32)
def _values_template(sql: str) -> tuple[str, str, str]:
    """An ``INSERT ... VALUES (row) [suffix]`` named query as its head, row and suffix."""
    head, _, rest = sql.partition("VALUES")
    start = rest.index("(")
    depth = 0
    for end in range(start, len(rest)):  # the parenthesis closing the row (placeholders hold some)
        depth += {"(": 1, ")": -1}.get(rest[end], 0)
        if depth == 0:
            break
    return f"{head}VALUES ", rest[start : end + 1], rest[end + 1 :].strip().rstrip(";")


def _multi_row(
    head: str, row: str, suffix: str, params: Sequence[Mapping[str, Any]], conn: Any
) -> Iterator[tuple[str, int]]:
    """The rows as INSERTs of at most ``_INSERT_CHUNK`` rows and about ``_INSERT_BYTES``, each with
    the index in ``params`` where its rows end."""
    start = 0
    while start < len(params):
        rendered: list[str] = []
        size = 0
        end = start
        while end < len(params) and len(rendered) < _INSERT_CHUNK and size < _INSERT_BYTES:
            text = _render(row, params[end], conn)
            rendered.append(text)
            size += len(text)
            end += 1
        yield f"{head}{','.join(rendered)} {suffix}".rstrip(), end
        start = end


def _chunks(params: Sequence[JobInsert]) -> list[int]:
    """Where each INSERT of job rows ends (at most ``_INSERT_CHUNK`` rows and about ``_INSERT_BYTES``)."""
    ends = []
    size = rows = 0
    for index, job in enumerate(params):
        if rows and (rows >= _INSERT_CHUNK or size >= _INSERT_BYTES):
            ends.append(index)
            size = rows = 0
        rows += 1
        size += len(job.invocation) + len(job.middleware) + len(job.function) + 200
    ends.append(len(params))
    return ends


#: jobs per script when a batch is pipelined (see :func:`_pipeline_parts`)
_PIPELINE_PART = 250


def _pipeline_parts(params: Sequence[JobInsert]) -> list[tuple[int, int]]:
    """Where a batch is cut into the scripts of ``insert_new_jobs``: parts of ``_PIPELINE_PART``
    jobs for a batch of at least two parts whose rows add up to well under ``_INSERT_BYTES`` (so
    no part's script can be refused for its length after the parts before it were sent);
    otherwise one part."""
    count = len(params)
    if count < 2 * _PIPELINE_PART:
        return [(0, count)]
    size = sum(_text_size(job) for job in params)
    if size > _INSERT_BYTES // 4:  # a literal is at most twice its text, escaped
        return [(0, count)]
    return [(start, min(count, start + _PIPELINE_PART)) for start in range(0, count, _PIPELINE_PART)]


def _whole_parts(params: Sequence[JobInsert]) -> Iterator[tuple[Sequence[JobInsert], bool]]:
    """The scripts of a batch whose rows are all built (:func:`_pipeline_parts`)."""
    parts = _pipeline_parts(params)
    for index, (start, end) in enumerate(parts):
        yield params[start:end], index + 1 == len(parts)


#: room in a script for what is not a job's own text (SQL, a row's other values)
_SCRIPT_SLACK = 100_000


def _built_parts(params: PendingInserts) -> Iterator[tuple[Sequence[JobInsert], bool]]:
    """The scripts of a batch built part by part: ``_PIPELINE_PART`` jobs at a time, each built
    when the script before it is at the server, cut where its text passes ``_INSERT_BYTES // 4``
    (a literal is at most twice its text, escaped; one job alone fits, see ``most_bytes``)."""
    count = len(params)
    for start in range(0, count, _PIPELINE_PART):
        end = min(count, start + _PIPELINE_PART)
        rows = params.rows(start, end)
        cuts = [0]
        size = 0
        for index, job in enumerate(rows):
            job_size = _text_size(job)
            if size and size + job_size > _INSERT_BYTES // 4:
                cuts.append(index)
                size = 0
            size += job_size
        cuts.append(len(rows))
        for left, right in itertools.pairwise(cuts):
            yield rows[left:right], end == count and right == len(rows)


def _text_size(job: JobInsert) -> int:
    """About how much text a job puts in a script before escaping (its values, some SQL per row)."""
    size = len(job.invocation) + len(job.middleware) + len(job.function) + 300
    size += sum(300 + len(prop.name) + len(str(prop.value)) for prop in job.properties)
    size += sum(300 + len(state.fields) + len(state.reason or "") for state in job.states)
    return size


def _positions(params: Sequence[JobInsert]) -> list[tuple[int, int]]:
    """Per job: its INSERT of job rows and its position in it."""
    positions: list[tuple[int, int]] = []
    start = 0
    for chunk, end in enumerate(_chunks(params)):
        positions.extend((chunk, position) for position in range(end - start))
        start = end
    return positions


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@functools.lru_cache(maxsize=64)
def _positional(template: str) -> tuple[str, tuple[str, ...]]:
    """A ``%(name)s`` template as a positional one (``%s``) and its placeholder names in order."""
    return _PLACEHOLDER.sub("%s", template), tuple(_PLACEHOLDER.findall(template))


class _Literals:
    """Values as SQL literals (:func:`_escape`); aware datetimes as the naive UTC value a DATETIME
    column holds. A value seen before in the same script is escaped once (the queue, the state
    names and times, the middleware of jobs created alike)."""

    __slots__ = ("_connection", "_memo")

    def __init__(self, connection: Any, *, remember: bool = True) -> None:
        self._connection = connection
        #: None: nothing is remembered (a script of one job, where no value comes twice)
        self._memo: dict[tuple[type, Any], str] | None = {} if remember else None

    def fresh(self, value: Any) -> str:
        """The literal of a value not worth remembering (an invocation, an execution id)."""
        if type(value) is datetime:
            value = _naive_utc(value)
        return str(_escape(value, self._connection))

    def __call__(self, value: Any) -> str:
        memo = self._memo
        if memo is None:
            return self.fresh(value)
        key = (type(value), value)  # the type too: 1, 1.0 and True are equal keys
        try:
            return memo[key]
        except KeyError:
            text = memo[key] = self.fresh(value)
            return text
        except TypeError:  # not hashable
            return self.fresh(value)


#: a row template in positional form (see :func:`_positional`)
_Piece = tuple[str, tuple[str, ...]]


@functools.lru_cache(maxsize=64)
def _row_template(
    sql: str, replace: tuple[tuple[str, str], ...] = (), around: str | None = None
) -> tuple[str, str, tuple[_Piece, ...]]:
    """An ``INSERT ... VALUES (row)`` query as its head, suffix and row: the row with
    ``replace``'s substitutions, split at the placeholder ``around`` when given (where a script
    puts the job's id), each piece in positional form."""
    head, row, suffix = _values_template(sql)
    for old, new in replace:
        row = row.replace(old, new)
    row = _COMPACT_CLOSE.sub(")", _COMPACT_OPEN.sub("(", " ".join(row.split())))  # less text to parse per row
    pieces = _around(row, around) if around is not None else (row,)
    return head, suffix, tuple(_positional(piece) for piece in pieces)


def _fill(piece: _Piece, literals: Mapping[str, str]) -> str:
    """A positional row piece with its placeholders' literals."""
    template, names = piece
    return template % tuple([literals[name] for name in names])


def _around(template: str, name: str) -> tuple[str, str]:
    """A row template split at the placeholder ``name`` (where the job's id goes)."""
    before, _, after = template.partition(f"%({name})s")
    return before, after


_COMPACT_OPEN = re.compile(r"\(\s+")
_COMPACT_CLOSE = re.compile(r"\s+\)")

#: the substitutions of the script's rows: the database clock of the whole script, read once
_NOW = (("%(now)s", "@hm_now"),)
#: a job row locked at its creation, and one that is not (no expression per row for the server)
_LOCKED_JOB_ROW = (*_NOW, ("%(locked_at)s", "@hm_now"))
_FREE_JOB_ROW = (*_NOW, ("%(locked_at)s", "NULL"))
#: a queue entry's due time: an SQL expression of its own (see :func:`_due`)
_QUEUE_ROW = (*_NOW, ("%(execute_after)s", "%(due)s"))


def _due(literal: _Literals, pointer: QueuePointer) -> str:
    """A new queue entry's due time as SQL: its time, or the database clock plus its delay."""
    if pointer.execute_after is not None:
        return literal(pointer.execute_after)
    delay = pointer.delay
    if delay is None or not delay:
        return "@hm_now"
    return f"@hm_now + INTERVAL {(delay.days * 86_400 + delay.seconds) * 1_000_000 + delay.microseconds} MICROSECOND"


def _insert_script(
    q: Mapping[str, SQL],
    params: Sequence[JobInsert],
    connection: Any,
    *,
    commit: bool,
    compound: bool = False,
    clock: bool = True,
) -> str | None:
    """The statements of ``insert_new_jobs`` (every value escaped as the driver does); None when
    they would be longer than ``_INSERT_BYTES``. A row of a job's states, properties, queue entry
    or link names its job as the first id of its INSERT of job rows (``@hm_f<insert>``, or
    ``LAST_INSERT_ID()`` in the script of one job) plus its position; rows shared by several jobs
    (the states and properties of jobs created alike) are escaped once. The script of one job is
    filled in from one made before for a job created alike (:func:`_one_job_script`).

    ``compound``: the statements as one MariaDB compound statement (``BEGIN NOT ATOMIC ... END``),
    which answers with the SELECT's rows and one OK instead of a result per statement: reading
    them costs the client about half as much CPU (a create one by one, whole: about 270 → 185 µs).
    On MariaDB the rows that name a job of the script (its states, properties and queue entry)
    are also written without foreign-key checks (``SET STATEMENT foreign_key_checks = 0 FOR``,
    that statement alone): their job is a row this transaction has just inserted, so the check
    could not fail, and skipping its lookup per row saves the server about a sixth of a batch's
    CPU. A link to a parent (``awaiting_parent``) names a job of the application's: checked. An id
    of NULL (ids found not consecutive) still fails the script: the rows read back from the job
    rows (:func:`_derived_rows`) are counted, and a row written with it fails its INSERT (a NOT
    NULL column, or in a non-strict session the duplicate key of two jobs' rows at 0).
    ``clock``: the script reads the database clock (``@hm_now``) and checks that a multi-row
    INSERT gets consecutive ids (``@hm_ok``); without it, it uses what the script before it on the
    same session read (a pipelined batch: one clock for all its jobs)."""
    if len(params) == 1:
        return _one_job_script(q, params[0], connection, commit=commit, compound=compound, clock=clock)
    return _script_of(q, params, connection, commit=commit, compound=compound, clock=clock)


#: MariaDB: the statement that follows writes rows naming a job of the same script (see _insert_script)
_UNCHECKED = "SET STATEMENT foreign_key_checks = 0 FOR "
_UNKNOWN_STATEMENT = 1243  # ER_UNKNOWN_STMT_HANDLER: no statement of that name prepared on the session


def _plain_values(job: JobInsert) -> tuple[Mapping[str, Any], ...] | None:
    """The values of :func:`_plain_statement` for ``job`` (its job row, two history rows and queue
    entry), or None when the statement does not write it: a job with properties, a lock, a
    parent, another number of states, no queue entry, or one due after a delay (an expression
    of the database clock)."""
    pointer = job.enqueue
    if (
        pointer is None
        or (pointer.delay is not None and pointer.delay)
        or job.properties
        or job.lock_owner is not None
        or job.awaiting_parent is not None
        or len(job.states) != 2
    ):
        return None
    # the values of job_insert and job_state_insert (keys their statements do not use are left unread)
    return (
        job_rows([job], None, same)[0],
        *[state_params(0, state, same) for state in job.states],
        {
            "queue": pointer.queue,
            "priority": pointer.priority,
            "execution_id": pointer.execution_id,
            "execute_after": pointer.execute_after,
        },
    )


@functools.lru_cache(maxsize=32)
def _plain_statement(
    job_insert: str, state_insert: str, queue_insert: str
) -> tuple[str, str, tuple[tuple[int, str], ...]]:
    """The compound statement of a common create (the rows of :func:`_insert_script` for one job,
    the COMMIT, the clock and the id) with a ``?`` per value: its name (the same text, the same
    name), its text and, per ``?``, which row of :func:`_plain_values` and which value fills it."""
    slots: list[tuple[int, str]] = []

    def marked(row: int, piece: _Piece) -> str:
        template, names = piece
        slots.extend((row, name) for name in names)
        return template % (("?",) * len(names))

    job_head, _, (job_row,) = _row_template(job_insert, (*_FREE_JOB_ROW, ("%(lock_owner)s", "NULL")))
    state_head, _, (before, after) = _row_template(state_insert, (), "job_id")
    queue_head, _, (entry_before, entry_after) = _row_template(
        queue_insert, (*_NOW, ("%(execute_after)s", "COALESCE(%(execute_after)s, @hm_now)")), "job_id"
    )
    job_values = marked(0, job_row)
    states = ",".join(f"{marked(row, before)}LAST_INSERT_ID(){marked(row, after)}" for row in (1, 2))
    entry = f"{marked(3, entry_before)}LAST_INSERT_ID(){marked(3, entry_after)}"
    text = (
        "BEGIN NOT ATOMIC\n"
        "SET @hm_now = UTC_TIMESTAMP(6);\n"
        f"{job_head}{job_values};\n"
        f"{_UNCHECKED}{state_head}{states};\n"
        f"{_UNCHECKED}{queue_head}{entry};\n"
        "COMMIT;\n"
        "SELECT CAST(@hm_now AS DATETIME(6)), LAST_INSERT_ID();\n"
        "END"
    )
    name = "hm_create_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return name, text, tuple(slots)


#: scripts of one job, as pieces around the values each create changes (see :func:`_one_job_script`)
_ONE_JOB_SCRIPTS: dict[tuple[Any, ...], tuple[str, ...]] = {}
_ONE_JOB_SCRIPTS_KEPT = 256
#: what a piece of a one-job script is filled with: where each value goes is marked in the text
#: rendered once, as an SQL literal of its own (``'\x01E\x01'``, say)
_MARK = "\x01"
_MARKED = re.compile("'\x01(E|Q|I|T\\d+)\x01'")


def _one_job_script(
    q: Mapping[str, SQL], job: JobInsert, connection: Any, *, commit: bool, compound: bool, clock: bool
) -> str | None:
    """:func:`_insert_script` of one job: the script made for a job created alike (same queue,
    function, states but their times, properties, queue entry but its execution id...), its
    execution id, call and state times filled in; the whole script rendered (and kept) the first
    time. About a sixth of rendering it."""
    pointer = job.enqueue
    states = job.states
    key = (
        q["job_insert"],
        connection.escape_string("\\"),  # the session's escaping (NO_BACKSLASH_ESCAPES or not)
        commit,
        compound,
        clock,
        job.queue,
        job.priority,
        job.middleware,
        job.function,
        job.lock_owner,
        job.awaiting_parent,
        tuple([(state.sequence, state.name, state.reason, state.fields) for state in states]),
        # a float by its text: 0.0 and -0.0 are equal keys but not the same literal
        tuple(
            [
                (prop.name, prop.type, repr(prop.value) if type(prop.value) is float else prop.value)
                for prop in job.properties
            ]
        ),
        None if pointer is None else (pointer.queue, pointer.priority, pointer.execute_after, pointer.delay),
    )
    try:
        pieces = _ONE_JOB_SCRIPTS.get(key)
    except TypeError:  # a value that is not hashable: rendered whole
        return _script_of(q, [job], connection, commit=commit, compound=compound, clock=clock)
    if pieces is None:
        marked = dataclasses.replace(
            job,
            execution_id=f"{_MARK}E{_MARK}",
            invocation=f"{_MARK}I{_MARK}",
            states=tuple(
                dataclasses.replace(state, elected_at=f"{_MARK}T{index}{_MARK}")  # type: ignore[arg-type]
                for index, state in enumerate(states)
            ),
            enqueue=None if pointer is None else dataclasses.replace(pointer, execution_id=f"{_MARK}Q{_MARK}"),
        )
        script = _script_of(q, [marked], connection, commit=commit, compound=compound, clock=clock)
        if script is None:
            return None
        pieces = tuple(_MARKED.split(script))
        # each mark once, the states' times once more for the job row: another one is in a value of
        # the job's own (a property, say) that looks like a mark, so this job is rendered whole
        if len(pieces) // 2 != 3 + len(states) + (pointer is not None):
            return _script_of(q, [job], connection, commit=commit, compound=compound, clock=clock)
        if len(_ONE_JOB_SCRIPTS) >= _ONE_JOB_SCRIPTS_KEPT:
            _ONE_JOB_SCRIPTS.clear()
        _ONE_JOB_SCRIPTS[key] = pieces
    values = {
        "E": _quote(job.execution_id, connection),
        "I": _quote(job.invocation, connection),
    }
    if pointer is not None:
        values["Q"] = _quote(pointer.execution_id, connection)
    for index, state in enumerate(states):
        values[f"T{index}"] = f"'{_naive_utc(state.elected_at).isoformat(' ')}'"
    script = "".join([piece if position % 2 == 0 else values[piece] for position, piece in enumerate(pieces)])
    return script if len(script) <= _INSERT_BYTES else None


def _state_literals(state: StateRow, literal: _Literals) -> dict[str, str]:
    """The SQL literals of a history row's values (its job's id left to the caller)."""
    return {name: literal(value) for name, value in state_params(0, state, same).items()}


_TABLE = re.compile(r"INSERT\s+INTO\s+(\S+)")
#: what a script raises when the rows it read back from its own job INSERTs are not all there
_NOT_CONSECUTIVE = "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'HiveMind: the new jobs did not get consecutive ids'"


def _derived_rows(
    q: Mapping[str, SQL],
    params: Sequence[JobInsert],
    positions: Sequence[tuple[int, int]],
    firsts: Sequence[str],
    literal: _Literals,
) -> list[str] | None:
    """MariaDB, a batch whose jobs were created alike (the same history rows, and each a queue
    entry of its own queue, priority and execution id, due alike, or none): their history rows
    and queue entries as ``INSERT ... SELECT`` from the job rows the script has just inserted (the
    ids from each INSERT's first to its last; unchecked, ``_UNCHECKED``), each followed by a check
    that it wrote a row per job (the ids were consecutive) that raises otherwise. The server parses
    one row per history row of the batch instead of one per job and state (about a third of a
    batch's statement text); the rows are the same. None: the jobs differ, write them row by row."""
    first = params[0]
    states, pointer = first.states, first.enqueue
    for job in params:
        if job.states is not states and job.states != states:
            return None
        entry = job.enqueue
        if entry is None or pointer is None:
            if entry is not pointer:
                return None
        elif (entry.queue, entry.priority, entry.execution_id, entry.execute_after, entry.delay) != (
            job.queue,
            job.priority,
            job.execution_id,
            pointer.execute_after,
            pointer.delay,
        ):
            return None
    found = _TABLE.match(q["job_insert"].lstrip())
    state_head, _, (state_before, state_after) = _row_template(q["job_state_insert"], (), "job_id")
    queue_head, _, (entry_before, entry_after) = _row_template(q["queue_upsert"], _QUEUE_ROW, "job_id")
    if found is None or state_before != ("(", ()) or entry_before != ("(", ()):
        return None
    jobs = found.group(1)
    sizes = [0] * len(firsts)
    for chunk, _ in positions:
        sizes[chunk] += 1
    ranges = [
        f"FROM {jobs} AS j WHERE j.id BETWEEN {first_id} AND {first_id} + {size - 1}"
        for first_id, size in zip(firsts, sizes, strict=True)
    ]
    selects: list[str] = []
    for state in states:
        tail = _fill(state_after, _state_literals(state, literal)).removesuffix(")")
        selects.extend(f"SELECT j.id{tail} {where}" for where in ranges)
    statements = [
        f"{_UNCHECKED}{state_head.removesuffix('VALUES ')}{' UNION ALL '.join(selects)}",
        f"IF ROW_COUNT() <> {len(params) * len(states)} THEN {_NOT_CONSECUTIVE}; END IF",
    ]
    if pointer is not None:
        values = {"queue": "j.queue", "priority": "j.priority", "execution_id": "j.execution_id"}
        tail = _fill(entry_after, {**values, "due": _due(literal, pointer)}).removesuffix(")")
        entries = " UNION ALL ".join(f"SELECT j.id{tail} {where}" for where in ranges)
        statements.append(f"{_UNCHECKED}{queue_head.removesuffix('VALUES ')}{entries}")
        statements.append(f"IF ROW_COUNT() <> {len(params)} THEN {_NOT_CONSECUTIVE}; END IF")
    return statements


def _rows_of_new_jobs(
    sql: SQL,
    positions: Sequence[tuple[int, int]],
    firsts: Sequence[str],
    rows_per_job: Sequence[Sequence[Any]],
    literals_of: Callable[[Any], dict[str, str]],
) -> str:
    """One multi-row INSERT (``sql``'s row template) of the rows of the jobs a script has just
    inserted, each naming its job as ``<first id of its INSERT> + <position>``. A row object
    shared by several jobs (a batch's alike history rows) is rendered once."""
    head, suffix, (before, after) = _row_template(sql, (), "job_id")
    parts_of: dict[int, tuple[str, str]] = {}
    rendered: list[str] = []
    for (chunk, position), rows in zip(positions, rows_per_job, strict=True):
        for row in rows:
            parts = parts_of.get(id(row))
            if parts is None:
                literals = literals_of(row)
                parts = parts_of[id(row)] = (_fill(before, literals), _fill(after, literals))
            rendered.append(f"{parts[0]}{firsts[chunk]} + {position}{parts[1]}")
    return f"{head}{','.join(rendered)} {suffix}".rstrip()


def _script_of(
    q: Mapping[str, SQL],
    params: Sequence[JobInsert],
    connection: Any,
    *,
    commit: bool,
    compound: bool,
    clock: bool,
) -> str | None:
    """:func:`_insert_script`, every value rendered."""
    literal = _Literals(connection, remember=len(params) > 1)
    fresh = literal.fresh
    positions = _positions(params)
    # consecutive ids of a multi-row insert: checked here too (an application's session may differ)
    statements = (
        [
            "SET @hm_now = UTC_TIMESTAMP(6), "
            "@hm_ok = IF(@@session.auto_increment_increment = 1 AND @@innodb_autoinc_lock_mode IN (0, 1), 1, NULL)"
        ]
        if clock
        else []
    )
    head, suffix, (free_row,) = _row_template(q["job_insert"], _FREE_JOB_ROW)
    rendered: list[str] = []
    firsts: list[str] = []  # per INSERT of job rows: the SQL expression of its first id
    for index, ((chunk, _), job) in enumerate(zip(positions, params, strict=True)):
        current = job.states[-1]
        job_row = free_row if job.lock_owner is None else _row_template(q["job_insert"], _LOCKED_JOB_ROW)[2][0]
        literals = {
            "queue": literal(job.queue),
            "priority": literal(job.priority),
            "execution_id": fresh(job.execution_id),
            "state_name": literal(current.name),
            "state_sequence": literal(current.sequence),
            "state_elected_at": literal(current.elected_at),
            "invocation": fresh(job.invocation),
            "middleware": literal(job.middleware),
            "function_name": literal(job.function),
            "lock_owner": literal(job.lock_owner),
        }
        rendered.append(_fill(job_row, literals))
        if index + 1 == len(params) or positions[index + 1][0] != chunk:
            statements.append(f"{head}{','.join(rendered)} {suffix}".rstrip())
            if len(params) == 1:
                # no later INSERT of the script generates an AUTO_INCREMENT value: LAST_INSERT_ID()
                # stays the job's id, one statement fewer than a variable
                firsts.append("LAST_INSERT_ID()")
            else:  # read once, not a function call per row of the tables below
                statements.append(f"SET @hm_f{chunk} = LAST_INSERT_ID(){'' if len(rendered) == 1 else ' * @hm_ok'}")
                firsts.append(f"@hm_f{chunk}")
            rendered = []

    # MariaDB: the rows naming a job of this script skip the foreign-key check (see _insert_script)
    ours = _UNCHECKED if compound else ""
    derived = _derived_rows(q, params, positions, firsts, literal) if compound and len(params) > 1 else None
    if derived is not None:
        statements.extend(derived)
    else:
        rows = _rows_of_new_jobs(
            q["job_state_insert"],
            positions,
            firsts,
            [job.states for job in params],
            lambda state: _state_literals(state, literal),
        )
        statements.append(f"{ours}{rows}")
    if any(job.properties for job in params):
        rows = _rows_of_new_jobs(
            q["job_property_upsert"],
            positions,
            firsts,
            [job.properties for job in params],
            lambda prop: {name: literal(value) for name, value in property_params(0, prop, _naive_utc).items()},
        )
        statements.append(f"{ours}{rows}")
    if derived is None and any(job.enqueue is not None for job in params):
        # a new job has no entry yet: a plain INSERT, without the upsert's ON DUPLICATE KEY clause
        head, _, (before, after) = _row_template(q["queue_upsert"], _QUEUE_ROW, "job_id")
        for (chunk, position), job in zip(positions, params, strict=True):
            pointer = job.enqueue
            if pointer is None:
                continue
            literals = {
                "queue": literal(pointer.queue),
                "priority": literal(pointer.priority),
                "execution_id": fresh(pointer.execution_id),
                "due": _due(literal, pointer),
            }
            rendered.append(f"{_fill(before, literals)}{firsts[chunk]} + {position}{_fill(after, literals)}")
        statements.append(f"{ours}{head}{','.join(rendered)}")
        rendered = []
    if any(job.awaiting_parent is not None for job in params):
        head, suffix, (before, after) = _row_template(q["continuation_insert"], _NOW, "child_id")
        for (chunk, position), job in zip(positions, params, strict=True):
            if job.awaiting_parent is not None:
                literals = {"parent_id": literal(job.awaiting_parent)}
                rendered.append(f"{_fill(before, literals)}{firsts[chunk]} + {position}{_fill(after, literals)}")
        statements.append(f"{head}{','.join(rendered)} {suffix}".rstrip())
    if commit:
        statements.append("COMMIT")
    statements.append("SELECT CAST(@hm_now AS DATETIME(6)), " + ", ".join(firsts))
    script = ";\n".join(statements)
    if compound:
        script = f"BEGIN NOT ATOMIC\n{script};\nEND"
    if len(script) > _INSERT_BYTES:
        return None
    return script


_UNKNOWN_VARIABLE = 1193  # ER_UNKNOWN_SYSTEM_VARIABLE


class _MySQLBlockingSession(BlockingSession):
    """A pymysql connection; a list or tuple parameter binds as ``(a, b, c)`` (pymysql's own
    escaping of sequences), as ``IN :job_ids`` needs."""

    __slots__ = ("raw",)

    def __init__(self, raw: pymysql.connections.Connection[Any]) -> None:
        self.raw = raw

    def fetchall(self, sql: SQL, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.raw.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def execute(self, sql: SQL, params: dict[str, Any] | None = None) -> int:
        with self.raw.cursor() as cursor:
            return int(cursor.execute(sql, params))

    def commit(self) -> None:
        self.raw.commit()

    def close(self) -> None:
        self.raw.close()

    def fileno(self) -> int:
        sock = getattr(self.raw, "_sock", None)  # pymysql keeps its socket there and offers no accessor
        if sock is None:
            raise pymysql.err.InterfaceError(0, "the connection is closed")
        return int(sock.fileno())

    def dt(self, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC)

    def bind_dt(self, value: datetime) -> Any:
        return _naive_utc(value)


class _MySQLDriver(Driver):
    dialect = "mysql"
    capabilities = Capabilities(
        dialect="mysql",
        single_writer=False,
        skip_locked=True,
        listen_notify=False,
        returning_on_update=False,
        transactional_ddl=False,
        inserts_in_parts=True,
    )

    def __init__(self, url: ServerURL, prefix: str) -> None:
        self.url = url
        self.namespace = url.database
        self.quote = "`"
        self.prefix = prefix
        self._pool: asyncmy.Pool | None = None
        self._users = 0
        #: pooled connections already switched to READ COMMITTED
        self._configured: weakref.WeakSet[Any] = weakref.WeakSet()
        #: the server's max_allowed_packet in bytes, read when the pool opens (None: not known)
        self.max_allowed_packet: int | None = None
        #: whether a multi-row INSERT gets consecutive ids (innodb_autoinc_lock_mode 0 or 1 and an
        #: auto_increment_increment of 1), read when the pool opens
        self.consecutive_ids = False
        #: whether the server runs compound statements outside stored programs (MariaDB), read
        #: when the pool opens
        self.compound_statements = False

    def _connect_args(self) -> dict[str, Any]:
        try:
            timeout = float(self.url.options.get("connect_timeout", 10))
        except ValueError:
            raise ConfigurationError("connect_timeout must be a number of seconds") from None
        return {
            "host": self.url.host,
            "port": self.url.port,
            "user": self.url.user or "root",
            "password": self.url.password or "",
            "database": self.url.database,
            "autocommit": False,
            "charset": "utf8mb4",
            "client_flag": CLIENT.FOUND_ROWS,
            "connect_timeout": timeout,
            "init_command": "SET time_zone = '+00:00'",
        }

    def connect_blocking(self, timeout: float) -> BlockingSession:
        args = self._connect_args()
        raw = pymysql.connect(
            host=args["host"],
            port=args["port"],
            user=args["user"],
            password=args["password"],
            database=args["database"],
            autocommit=False,
            charset="utf8mb4",
            client_flag=CLIENT.FOUND_ROWS,
            connect_timeout=min(float(args["connect_timeout"]), max(timeout, 0.1)),
            read_timeout=max(timeout, 0.1),
            write_timeout=max(timeout, 0.1),
            init_command="SET time_zone = '+00:00'",
        )
        try:
            with raw.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", (max(1, math.ceil(timeout)),))
                # MariaDB ends a session idle inside a transaction (its client gone silent), so its
                # row locks cannot hold up another colony's lock monitor; MySQL has no such setting
                try:
                    cursor.execute("SET SESSION idle_transaction_timeout = %s", (max(1, math.ceil(2 * timeout)),))
                except pymysql.err.OperationalError as error:
                    if not error.args or error.args[0] != _UNKNOWN_VARIABLE:
                        raise
            raw.commit()
        except BaseException:
            raw.close()
            raise
        return _MySQLBlockingSession(raw)

    async def open_pool(self) -> None:
        self._users += 1
        if self._pool is not None:
            return
        try:
            self._pool = await asyncmy.create_pool(
                minsize=1, maxsize=self.url.pool_size, pool_recycle=3600, **self._connect_args()
            )
        except (*_DRIVER_ERRORS, OSError) as error:
            self._users -= 1
            # no answer from a server (refused, timed out, gone): trying again later may work
            code = error.args[0] if error.args and isinstance(error.args[0], int) else None
            unreachable = isinstance(error, OSError) or code in _UNREACHABLE
            raise (RetryableStorageError if unreachable else StorageError)(
                f"cannot connect to MySQL at {self.url.host}:{self.url.port}/{self.url.database}: "
                f"{self.url.redact(error)}"
            ) from error
        await self._read_max_allowed_packet()

    async def close_pool(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        # The pool stays reachable until it is closed: a transaction ending meanwhile must still
        # hand its connection back, or wait_closed() would wait for it forever.
        pool = self._pool
        if pool is not None:
            pool.close()
            try:
                # a connection in use by a task stuck on a server that does not answer is never handed
                # back: past the bound (or when the close itself is cancelled) it is closed under it
                await asyncio.wait_for(pool.wait_closed(), timeout=CLOSE_WAIT)
            except TimeoutError:
                pool.terminate()
            except asyncio.CancelledError:
                pool.terminate()
                raise
            finally:
                self._pool = None

    async def acquire(self) -> Any:
        assert self._pool is not None
        raw = await self._pool.acquire()
        if raw not in self._configured:
            try:
                async with raw.cursor() as cursor:
                    await cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            except BaseException:
                raw.close()
                await self._pool.release(raw)
                raise
            self._configured.add(raw)
        return raw

    async def release(self, raw: Any, *, discard: bool) -> None:
        if discard or self._pool is None:
            raw.close()
        if self._pool is not None:
            await self._pool.release(raw)

    def wrap(self, raw: Any) -> Connection:
        if _is_blocking_mysql(raw):  # an application's sync connection
            return _MySQLConnection(_BlockingMySQL(raw), self)
        return _MySQLConnection(raw, self)

    async def _read_max_allowed_packet(self) -> None:
        """The server's ``max_allowed_packet`` (a new session's value), to word its refusals."""
        assert self._pool is not None
        try:
            raw = await self._pool.acquire()
            try:
                async with raw.cursor() as cursor:
                    await cursor.execute("SELECT @@max_allowed_packet")
                    row = await cursor.fetchone()
                    await cursor.execute("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment, VERSION()")
                    mode, increment, version = await cursor.fetchone()
                    self.consecutive_ids = int(mode) in (0, 1) and int(increment) == 1
                    self.compound_statements = "mariadb" in str(version).lower()
                await raw.rollback()
            finally:
                await self._pool.release(raw)
        except _DRIVER_ERRORS as error:  # only the wording of a later error depends on it
            _log.debug("could not read max_allowed_packet of %s: %s", self.where, self.url.redact(error))
            return
        self.max_allowed_packet = int(row[0])

    @property
    def where(self) -> str:
        return f"{self.url.host}:{self.url.port}/{self.url.database}"

    def packet_refusal(self, error: Exception, statement: str) -> StorageError | None:
        """A worded StorageError (not retryable: the same statement would fail again) when ``error``
        is the server refusing ``statement`` for being over its ``max_allowed_packet``, else None."""
        code = error.args[0] if error.args and isinstance(error.args[0], int) else None
        text = str(error)
        size = utf8_size(statement)
        packet = self.max_allowed_packet
        refused = code == _PACKET_TOO_LARGE or "max_allowed_packet" in text
        if not refused and size is not None and size >= (packet or _WIRE_PACKET):
            refused = (
                code in _CONNECTION_GONE
                or "packet sequence number wrong" in text.lower()
                or isinstance(error, _INTERFACE_ERRORS)
            )
        if not refused:
            return None
        server = f"its max_allowed_packet is {packet:,} bytes" if packet is not None else "over its max_allowed_packet"
        return StorageError(
            f"the MySQL/MariaDB server at {self.where} refused a statement of {size:,} bytes: {server}. The statement "
            "did not run and its transaction is rolled back. Raise the server's max_allowed_packet (SET GLOBAL "
            "max_allowed_packet = ..., or in the server configuration; new connections use it) above the largest "
            "values you store, or keep HiveMind's size limits well below it: "
            "Options(limits=Limits(max_argument_bytes=..., max_data_bytes=..., max_result_bytes=...)). "
            f"Driver error: {error}"
        )

    async def commit(self, raw: Any) -> None:
        await raw.commit()

    async def rollback(self, raw: Any) -> None:
        await raw.rollback()

    def is_driver_error(self, error: BaseException) -> bool:
        return isinstance(error, _DRIVER_ERRORS)

    def is_retryable(self, error: BaseException) -> bool:
        if isinstance(error, _INTERFACE_ERRORS):
            return True
        code = error.args[0] if isinstance(error, _DRIVER_ERRORS) and error.args else None
        return code in _RETRY_CODES

    def connection_lost(self, raw: Any) -> bool:
        if isinstance(raw, asyncmy.Connection):
            return not raw.connected
        return bool(raw.closed)

    def check_external(self, connection: object) -> None:
        aiomysql = sys.modules.get("aiomysql")  # an aiomysql connection means aiomysql is imported
        if (
            not isinstance(connection, asyncmy.Connection)
            and (aiomysql is None or not isinstance(connection, aiomysql.Connection))
            and not _is_blocking_mysql(connection)
        ):
            raise ConfigurationError(
                "a MySQL environment runs on an asyncmy, aiomysql, PyMySQL or mysqlclient connection, "
                f"got {type(connection).__name__}"
            )
        if cast(Any, connection).get_autocommit():
            raise TransactionError(
                "the connection is in autocommit mode: jobs would commit on their own; use a connection with "
                "autocommit=False (and `await connection.begin()`)"
            )

    async def migrate(
        self, queries: QueryBook, migrations: list[Migration], *, apply: bool, environment: str, where: str
    ) -> tuple[int, list[Migration]]:
        assert self._pool is not None
        # one lock per database, not per prefix: environments whose names could clash (case,
        # overlap) then never check and create at the same time
        lock = "hivemind-migrate:" + hashlib.sha1(self.url.database.encode(), usedforsecurity=False).hexdigest()[:32]
        raw = await self._pool.acquire()
        try:
            async with raw.cursor(_MigrationCursor) as cursor:
                await cursor.execute("SELECT GET_LOCK(%s, 60)", (lock,))
                if (await cursor.fetchone())[0] != 1:
                    raise StorageError("another process holds the HiveMind migration lock for more than 60 s")
                try:
                    return await self._migrate_locked(
                        raw, cursor, queries, migrations, apply=apply, environment=environment, where=where
                    )
                finally:
                    await cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
                    await cursor.fetchall()
                    await raw.commit()
        finally:
            await self._pool.release(raw)

    async def _migrate_locked(
        self,
        raw: Any,
        cursor: Any,
        queries: QueryBook,
        migrations: list[Migration],
        *,
        apply: bool,
        environment: str,
        where: str,
    ) -> tuple[int, list[Migration]]:
        # MySQL commits every DDL statement at once, so there is no rolling back a migration that
        # fails half-way: every statement is idempotent (IF NOT EXISTS, MODIFY) and a version is
        # recorded only after all its statements ran, so the next run completes it.
        await cursor.execute("SELECT @@lower_case_table_names")
        fold_case = int((await cursor.fetchone())[0]) != 0
        # table names and foreign-key names (InnoDB compares the latter ignoring case, errno 121)
        await cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND LOWER(LEFT(table_name, %s)) = %s "
            "UNION ALL SELECT constraint_name FROM information_schema.table_constraints "
            "WHERE constraint_schema = DATABASE() AND constraint_type = 'FOREIGN KEY' "
            "AND LOWER(LEFT(constraint_name, %s)) = %s",
            (len(self.prefix), self.prefix.lower(), len(self.prefix), self.prefix.lower()),
        )
        existing = [str(row[0]) for row in await cursor.fetchall()]
        if not check_table_names(_PACKAGE, environment, self.prefix, existing, where=where, fold_case=fold_case):
            if not apply:
                await raw.commit()
                return 0, migrations
            await cursor.execute(queries["schema_version_create"])
        await cursor.execute(queries["schema_version_current"])
        current = int((await cursor.fetchone())[0])
        owned_from = owner_version(migrations)
        if current >= owned_from:
            await cursor.execute(queries["schema_owner_get"])
            check_owner(await cursor.fetchone(), environment, self.prefix, where=where)
        pending = migrations[current:]
        if apply:
            for migration in pending:
                for statement in migration.statements(self.prefix):
                    await _run_migration_statement(cursor, statement)
                await cursor.execute(
                    queries["schema_version_insert"], {"version": migration.version, "name": migration.name}
                )
                await raw.commit()
            await cursor.execute(
                queries["schema_owner_claim"], {"environment": environment, "table_prefix": self.prefix}
            )
        await raw.commit()
        return current, pending

    def describe(self) -> dict[str, str]:
        return {"database": self.url.database}

    def preamble(self) -> list[SQL]:
        return [SQL(f"USE `{self.url.database}`")]


class MySQLStorage(ServerStorage):
    """One environment's tables (``table_prefix``) in one MySQL / MariaDB database."""

    package = _PACKAGE
    driver: _MySQLDriver

    def __init__(self, url: str, *, environment: str, table_prefix: str) -> None:
        parsed = ServerURL.parse(url, known_options={"connect_timeout"}, default_port=3306)
        if not _DATABASE.fullmatch(parsed.database):
            raise ConfigurationError(
                f"MySQL database name must be 1-64 characters from A-Z a-z 0-9 _ $ -, got {parsed.database!r}"
            )
        self.driver = _MySQLDriver(parsed, table_prefix)
        super().__init__(url, environment=environment, table_prefix=table_prefix, auto_migrate=parsed.auto_migrate)
        #: the highest job id the last change probe read (None: not probed yet)
        self._marker: int | None = None
        self._prober: asyncmy.Connection | None = None
        #: a probe is in flight
        self._probing = False
        self._probe_failed = False

    @classmethod
    def from_url(cls, url: str, *, environment: str, table_prefix: str) -> MySQLStorage:
        return cls(url, environment=environment, table_prefix=table_prefix)

    async def close(self) -> None:
        self._drop_prober()  # a probe in flight fails at once, quietly: the storage is closed
        await super().close()

    def change_marker(self) -> object | None:
        """The highest job id read by the last :meth:`probe_changes` (None before the first)."""
        return self._marker

    async def probe_changes(self) -> bool:
        """Read the highest job id (an index-only ``MAX``, one round trip on an autocommit
        connection of its own): it moves when any process creates a job. Jobs enqueued again
        (retries, requeues, continuations) do not move it; the colonies' poll finds those. While
        a probe is in flight (another colony of this process) a second one returns at once: the
        first refreshes the marker."""
        if not self._open or self._probing:
            return True
        self._probing = True
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                if self._prober is None:
                    self._prober = await asyncmy.connect(**{**self.driver._connect_args(), "autocommit": True})
                async with self._prober.cursor() as cursor:
                    await cursor.execute(self.queries["queue_change_probe"])
                    row = await cursor.fetchone()
        except BaseException as error:
            # a failed or interrupted probe leaves its connection in an unknown state
            self._drop_prober()
            if not isinstance(error, (*_DRIVER_ERRORS, OSError, TimeoutError)):
                raise
            if self._open and not self._probe_failed:
                _log.warning(
                    "environment %r: the change probe failed (%s); idle colonies poll until it works again",
                    self.environment,
                    self.redact(error),
                )
            self._probe_failed = True
            return True
        finally:
            self._probing = False
        self._drop_prober_if_closed()  # closed while this probe connected: nothing may stay open
        self._probe_failed = False
        self._marker = int(row[0])
        return True

    def _drop_prober(self) -> None:
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.close()

    def _drop_prober_if_closed(self) -> None:
        if not self._open:
            self._drop_prober()

    @property
    def max_allowed_packet(self) -> int | None:
        """The server's ``max_allowed_packet`` in bytes (known once the storage is open)."""
        return self.driver.max_allowed_packet

    def check_limits(self, limits: Limits) -> None:
        """Log a WARNING when a size limit lets values through that the server may refuse: a value
        travels escaped inside one statement, which can take up to twice its size."""
        packet = self.driver.max_allowed_packet
        if packet is None:
            return
        over = {name: size for name, size in limits.sizes().items() if 2 * size > packet}
        if not over:
            return
        _log.warning(
            "environment %r: the MySQL/MariaDB server at %s has max_allowed_packet = %s bytes, and the size limits "
            "%s allow values that may not fit in one statement once escaped (up to twice their size): storing such a "
            "value fails. Raise max_allowed_packet on the server to at least %s bytes, or lower these limits in "
            "Options(limits=Limits(...))",
            self.environment,
            self.driver.where,
            f"{packet:,}",
            ", ".join(f"Limits.{name} = {size:,}" for name, size in over.items()),
            f"{2 * max(over.values()) + 1024 * 1024:,}",
        )
