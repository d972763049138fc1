"""What the PostgreSQL and MySQL/MariaDB backends share: pools, transactions, migrations, retries.

A backend module supplies a :class:`Driver` (connect, pool, error classification, the few
statements that differ in shape) and its own ``sql/*.sql`` and ``migrations/*.sql``; the
operations themselves live once, in :mod:`hivemind_jobs.storage.server.operations`.

Transactions take a pooled connection at their first operation and give it back at the end.
When the *first* operation of a transaction fails because the connection was lost or the
database chose it as a deadlock / serialization victim, nothing of the transaction exists yet,
so it is run again on a fresh connection after a jittered pause (counted in
:attr:`ServerStorage.retried`). A later failure rolls the transaction back and is raised as a
:class:`~hivemind_jobs.errors.StorageError` (``RetryableStorageError`` when running the whole unit
of work again may succeed), which the worker runtime retries with backoff.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import random
import shlex
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.errors import ConfigurationError, RetryableStorageError, SchemaError, StorageError, TransactionError
from hivemind_jobs.storage.binding import IsFinal
from hivemind_jobs.storage.dialect import Dialect
from hivemind_jobs.storage.protocol import (
    Capabilities,
    JobHeartbeat,
    JobInsert,
    JobRecord,
    JobUpdate,
    LockRenewer,
    SchemaStatus,
    StorageInfo,
    Transaction,
)
from hivemind_jobs.storage.rows import Times, lean_claimed_record
from hivemind_jobs.storage.server import operations as ops
from hivemind_jobs.storage.sql import (
    IDENTIFIER_LIMITS,
    OWNER_MIGRATION,
    SQL,
    Migration,
    QueryBook,
    load_migrations,
    longest_prefixed_name,
    max_table_prefix,
    read_named_queries,
    to_pyformat,
)
from hivemind_jobs.storage.url import redact_url

__all__ = [
    "BlockingSession",
    "Connection",
    "Driver",
    "ServerLockRenewer",
    "ServerStorage",
    "ServerTransaction",
    "ServerURL",
    "to_pyformat",
]

_log = logging.getLogger("hivemind_jobs.storage")
R = TypeVar("R")
_FIRST_TRY_ATTEMPTS = 4
#: shorter passwords are not searched for in messages (they would hide ordinary words); the
#: URL and key=value patterns of redact_secrets still hide them
_SEARCHED_PASSWORD = 4


@dataclass(frozen=True)
class ServerURL:
    """The parts of a server URL HiveMind reads; driver options stay in ``options``.

    ``user`` and ``password`` are percent-decoded (``p%40ss`` is the password ``p@ss``): a password
    holding ``@ : / ? #`` or ``%`` can only be written that way.
    """

    scheme: str
    host: str
    port: int | None
    user: str | None
    password: str | None = field(repr=False)
    database: str
    options: dict[str, str]
    auto_migrate: bool
    pool_size: int

    @classmethod
    def parse(cls, url: str, *, known_options: set[str], default_port: int) -> ServerURL:
        parts = urlsplit(url)
        database = parts.path.lstrip("/")
        if not database or "/" in database:
            raise ConfigurationError(
                f"storage URL {redact_url(url)!r} names no database; use {parts.scheme}://user@host:port/database"
            )
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - known_options - {"auto_migrate", "pool_size"}
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {sorted(unknown)} in storage URL {redact_url(url)!r}; known: "
                f"{', '.join(sorted(known_options | {'auto_migrate', 'pool_size'}))}"
            )
        auto = query.pop("auto_migrate", "false").lower()
        if auto not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigurationError(f"auto_migrate must be true or false, got {auto!r}")
        try:
            pool_size = int(query.pop("pool_size", "10"))
        except ValueError:
            raise ConfigurationError("pool_size must be a whole number") from None
        if not 1 <= pool_size <= 1000:
            raise ConfigurationError(f"pool_size must be between 1 and 1000, got {pool_size}")
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"storage URL {redact_url(url)!r} has an invalid port") from None
        return cls(
            scheme=parts.scheme,
            host=parts.hostname or "127.0.0.1",
            port=port or default_port,
            user=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            database=database,
            options=query,
            auto_migrate=auto in ("true", "1", "yes"),
            pool_size=pool_size,
        )

    def redact(self, text: object) -> str:
        """``text`` (a driver error, a message) without passwords: those :func:`redact_secrets`
        finds, and this URL's password wherever it appears, decoded or percent-encoded."""
        shown = redact_secrets(str(text))
        password = self.password
        if password and len(password) >= _SEARCHED_PASSWORD:
            for form in {password, quote(password, safe=""), quote(password)}:
                shown = shown.replace(form, "***")
        return shown


class Connection(abc.ABC):
    """One pooled connection, as the operations see it (pyformat SQL, bound parameters only)."""

    #: the SQL dialect compiled queries are written in
    dialect: ClassVar[Dialect]
    #: how the operations handle time: clock values are aware datetimes, bound as :meth:`bind_dt` does
    times: ClassVar[Times]

    @abc.abstractmethod
    async def fetchall(self, sql: SQL, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    async def execute(self, sql: SQL, params: dict[str, Any] | None = None) -> int:
        """Run a statement; the number of rows it matched."""

    @abc.abstractmethod
    async def executemany(self, sql: SQL, params: Sequence[dict[str, Any]]) -> int:
        """Run a statement once per parameter set (pipelined where the driver can); rows matched."""

    async def write_rows(self, q: Mapping[str, SQL], name: str, rows: Sequence[dict[str, Any]]) -> None:
        """Run the write query ``name`` for every row (a backend may use one set-based statement)."""
        await self.executemany(q[name], rows)

    @abc.abstractmethod
    async def insert_if_absent(self, sql: SQL, params: dict[str, Any]) -> bool:
        """Run an INSERT of one row; False, without failing the transaction, when its key exists."""

    @abc.abstractmethod
    async def insert_id(self, sql: SQL, params: dict[str, Any]) -> int:
        """Run an INSERT of one row and return its generated id."""

    @abc.abstractmethod
    async def insert_jobs(self, q: Mapping[str, SQL], params: Sequence[dict[str, Any]]) -> list[int]:
        """Insert job rows; their ids in the order given."""

    #: set by the transaction while the operation it runs is its only one: that operation may commit
    #: the transaction with its own statement(s) (see :meth:`insert_new_jobs`)
    sole = False
    #: set by the transaction while the operation it runs is its last one (first or not): that
    #: operation may send the COMMIT with its own statements where it can (see
    #: :meth:`claim_start_rows`)
    last = False
    #: set by an operation that committed the transaction (while :attr:`sole` or :attr:`last`)
    committed = False
    #: the limit keys whose locks this transaction holds (see ``operations._claim_limited``)
    limit_keys_held: frozenset[str] = frozenset()
    #: the application's own connection (``transaction(connection=...)``)
    external = False
    #: set by the transaction when it runs its first operation again on a fresh connection
    retried = False
    #: the claim writes the starts of the jobs it claims in its own statement where the caller
    #: says how (``queue_claim_start_lean``; see ``QueueClaimStart.templates``)
    starts_in_claim: ClassVar[bool] = False
    #: saves that only end runs are fenced and written by one statement (``job_finish_fenced``)
    finishes_in_update: ClassVar[bool] = False

    async def insert_new_jobs(
        self, q: Mapping[str, SQL], params: Sequence[JobInsert]
    ) -> tuple[list[int], datetime] | None:
        """Insert new jobs with their states, properties, queue entries, parent links and wake-up
        in one round trip where the backend can (and commit in it when :attr:`sole`): their ids in
        the order given and the database clock the rows were written with. None where it cannot:
        the operation then writes table by table."""
        del q, params
        return None

    def pipeline(self) -> AbstractAsyncContextManager[object]:
        """Statements run inside are sent without waiting for each other where the driver can
        (PostgreSQL pipeline mode): their row counts are then not reported. Default: no-op."""
        return contextlib.nullcontext()

    async def commit_in_pipeline(self) -> bool:
        """Inside :meth:`pipeline`, while :attr:`sole` or :attr:`last` (the caller has nothing left
        to write in its operation, and no operation follows it): commit the transaction with the
        statements sent before it (no round trip of its own), and set :attr:`committed`. False,
        without committing, where the driver does not pipeline (the transaction then commits as
        usual)."""
        return False

    async def fetch_later(self, sql: SQL, params: dict[str, Any]) -> Callable[[], Awaitable[list[tuple[Any, ...]]]]:
        """Inside :meth:`pipeline`: send a SELECT with the statements around it; its rows are read
        by awaiting the returned call once the pipeline block has ended. Default: run it now."""
        rows = await self.fetchall(sql, params)

        async def read() -> list[tuple[Any, ...]]:
            return rows

        return read

    async def fetch_each(
        self, queries: Sequence[tuple[SQL, dict[str, Any]]], *, writes: Sequence[tuple[SQL, dict[str, Any]]] = ()
    ) -> list[list[tuple[Any, ...]]]:
        """The rows of several SELECTs, after running ``writes`` (one round trip for all where the
        driver can pipeline)."""
        for sql, params in writes:
            await self.execute(sql, params)
        return [await self.fetchall(sql, params) for sql, params in queries]

    async def claim_rows(self, q: Mapping[str, SQL], params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of ``queue_claim_select`` (a backend may prepare the session for it first)."""
        return await self.fetchall(q["queue_claim_select"], params)

    async def claim_start_rows(
        self, q: Mapping[str, SQL], params: dict[str, Any], *, commit: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of ``queue_claim_start_lean``, where :attr:`starts_in_claim`; with ``commit``
        the transaction's COMMIT goes with the statement (:attr:`committed` is then set; statements
        run after it run in a new transaction)."""
        raise NotImplementedError(f"{self.dialect} claims and starts jobs in separate statements")

    def started_record(self, row: tuple[Any, ...], owner: str, now: datetime) -> JobRecord:
        """The record of a job :meth:`claim_start_rows` started, from its row (see
        :func:`~hivemind_jobs.storage.rows.lean_claimed_record`)."""
        return lean_claimed_record(row, owner, now, self.dt)

    async def finish_rows(
        self, q: Mapping[str, SQL], params: dict[str, Any]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The rows of ``job_finish_fenced`` and the continuation links of its batch (as the
        rows of ``continuation_links_many``), where :attr:`finishes_in_update`."""
        raise NotImplementedError(f"{self.dialect} reads the fences of its saves first")

    async def revert_starts(self, q: Mapping[str, SQL], params: Sequence[dict[str, Any]]) -> None:
        """Put jobs ``queue_claim_start_lean`` started back as they were (``queue_start_revert``),
        where :attr:`starts_in_claim`."""
        raise NotImplementedError(f"{self.dialect} claims and starts jobs in separate statements")

    async def notify(self, q: Mapping[str, SQL], job_ids: Sequence[int]) -> None:
        """Tell listening colonies that these jobs were enqueued (at commit); no-op by default."""
        del q, job_ids

    async def notify_finished(self, q: Mapping[str, SQL], saved: Sequence[JobUpdate]) -> None:
        """Tell listening waiters which of these saves end their job in a final state (at commit);
        no-op by default (waiters poll)."""
        del q, saved

    @abc.abstractmethod
    def dt(self, value: datetime) -> datetime:
        """A datetime read from the database, as aware UTC."""

    @abc.abstractmethod
    def bind_dt(self, value: datetime) -> Any:
        """An aware datetime as this driver binds it."""


class BlockingSession(abc.ABC):
    """One blocking, unpooled driver connection (a :class:`ServerLockRenewer`'s), in a transaction
    once used. Statements are pyformat with bound parameters only."""

    @abc.abstractmethod
    def fetchall(self, sql: SQL, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    def execute(self, sql: SQL, params: dict[str, Any] | None = None) -> int: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def fileno(self) -> int:
        """The connection's socket (shut down by the watchdog when a call passes its deadline)."""

    @abc.abstractmethod
    def dt(self, value: datetime) -> datetime: ...

    @abc.abstractmethod
    def bind_dt(self, value: datetime) -> Any: ...


class Driver(abc.ABC):
    """The dialect-specific part of a server backend."""

    dialect: str
    capabilities: Capabilities
    url: ServerURL
    #: the schema or database every table name is qualified with, and the identifier quote
    namespace: str
    quote: str

    @abc.abstractmethod
    async def open_pool(self) -> None: ...

    @abc.abstractmethod
    async def close_pool(self) -> None: ...

    @abc.abstractmethod
    async def acquire(self) -> Any:
        """A raw pooled connection (in a fresh transaction once used)."""

    @abc.abstractmethod
    async def release(self, raw: Any, *, discard: bool) -> None: ...

    @abc.abstractmethod
    def wrap(self, raw: Any) -> Connection: ...

    @abc.abstractmethod
    async def commit(self, raw: Any) -> None: ...

    @abc.abstractmethod
    async def rollback(self, raw: Any) -> None: ...

    @abc.abstractmethod
    def is_retryable(self, error: BaseException) -> bool:
        """A deadlock, serialization failure or lost connection (running again may succeed)."""

    @abc.abstractmethod
    def is_driver_error(self, error: BaseException) -> bool: ...

    @abc.abstractmethod
    def connection_lost(self, raw: Any) -> bool: ...

    @abc.abstractmethod
    async def migrate(
        self, queries: QueryBook, migrations: list[Migration], *, apply: bool, environment: str, where: str
    ) -> tuple[int, list[Migration]]:
        """Under a database-wide lock: refuse tables that another environment's names clash with
        (:func:`~hivemind_jobs.storage.sql.check_table_names`, before anything is created) or that
        another prefix owns, read the version; with ``apply`` run the pending migrations and record
        ``environment`` as the owner. ``where`` names the database in error messages.

        Returns the version before and the pending (or applied) migrations.
        """

    @abc.abstractmethod
    def check_external(self, connection: object) -> None:
        """Refuse (ConfigurationError / TransactionError) an application connection that is not this
        driver's, or is not inside a transaction."""

    def connect_blocking(self, timeout: float) -> BlockingSession:
        """A new blocking connection whose connect, statements and lock waits are bounded by
        ``timeout`` seconds where the driver and server allow (the caller bounds the rest)."""
        raise ConfigurationError(f"the {self.dialect} backend has no blocking connection for lock renewal")

    def describe(self) -> dict[str, str]:
        return {}

    def preamble(self) -> list[SQL]:
        """Statements that make the namespace exist and current, for printed DDL."""
        return []


#: how long closing a storage waits for what it cannot close at once (pool workers, a listener, connections
#: in use), so that a database that does not answer never holds a close forever
CLOSE_WAIT = 10.0


async def cancel_within(task: asyncio.Future[Any], seconds: float) -> None:
    """Cancel ``task`` and wait at most ``seconds`` for it to end, cancelling it again now and then:
    psycopg first asks the server to cancel an interrupted query and waits for it (seconds when the
    server does not answer); a second cancel cuts that short."""
    deadline = time.monotonic() + seconds
    while not task.done():
        task.cancel()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.wait([task], timeout=min(0.3, remaining))
    if not task.cancelled():
        task.exception()  # retrieved: a failure while cancelled is of no interest now


class ServerStorage:
    """One environment's tables in a PostgreSQL or MySQL/MariaDB database."""

    driver: Driver
    package: str

    def __init__(self, url: str, *, environment: str, table_prefix: str, auto_migrate: bool) -> None:
        longest = max_table_prefix(self.package, self.driver.dialect)
        if len(table_prefix) > longest:
            raise ConfigurationError(
                f"table prefix {table_prefix!r} ({len(table_prefix)} characters) is too long for "
                f"{self.driver.dialect}: with its longest table or index name "
                f"({longest_prefixed_name(self.package)!r}) it would pass the limit of "
                f"{IDENTIFIER_LIMITS[self.driver.dialect]} characters per identifier. Use a table_prefix of at "
                f"most {longest} characters (the default hm_<environment>_ fits environment names of up to "
                f"{longest - 4} characters)"
            )
        self.url = url
        self.environment = environment
        raw = read_named_queries(self.package)
        self.queries = QueryBook(
            {name: to_pyformat(sql) for name, sql in raw.items()},
            table_prefix,
            namespace=self.driver.namespace,
            quote=self.driver.quote,
        )
        self.auto_migrate = auto_migrate
        self.capabilities: Capabilities = self.driver.capabilities
        self._open = False
        self._schema_version = 0
        #: first operations run again after a deadlock, serialization failure or lost connection
        self.retried = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact_url(self.url)} environment={self.environment!r}>"

    def redact(self, text: object) -> str:
        """``text`` without passwords (see :meth:`ServerURL.redact`), for messages about this storage."""
        return self.driver.url.redact(text)

    @property
    def info(self) -> StorageInfo:
        return StorageInfo(
            url=redact_url(self.url),
            environment=self.environment,
            table_prefix=self.queries.prefix,
            schema_version=self._schema_version,
            extras={**self.driver.describe(), "retried": str(self.retried)},
        )

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if self._open:
            return
        await self.driver.open_pool()
        try:
            status = await self._migrate(apply=self.auto_migrate)
            if status.pending:
                shown = redact_url(self.url)
                options = ["--url", shown, "--env", self.environment, "--prefix", self.queries.prefix]
                command = "hivemind db upgrade " + " ".join(shlex.quote(option) for option in options)
                password = " (with the real password in place of ***)" if shown != self.url else ""
                raise SchemaError(
                    f"the HiveMind tables of environment {self.environment!r} (prefix {self.queries.prefix!r}) in "
                    f"{shown} are at schema version {status.current}, this code needs {status.latest}. Run "
                    f"`{command}`{password} (or `hivemind db sql` with the same options for a DBA), or add "
                    "auto_migrate=true to the URL"
                )
            self._schema_version = status.current
        except BaseException:
            await self.driver.close_pool()
            raise
        self._open = True

    async def close(self) -> None:
        """Close the pool; bounded by the drivers (:data:`CLOSE_WAIT`), and cancellable."""
        if self._open:
            self._open = False
            await self.driver.close_pool()

    async def _migrate(self, *, apply: bool) -> SchemaStatus:
        migrations = load_migrations(self.package)
        try:
            current, pending = await self.driver.migrate(
                self.queries, migrations, apply=apply, environment=self.environment, where=redact_url(self.url)
            )
        except Exception as error:
            if not self.driver.is_driver_error(error):
                raise
            action = "upgrade" if apply else "read"
            raise StorageError(
                f"could not {action} the schema of environment {self.environment!r} in {redact_url(self.url)}: "
                f"{self.driver.dialect}: {self.redact(error)}"
            ) from error
        if current > len(migrations):
            raise SchemaError(
                f"the tables with prefix {self.queries.prefix!r} in {redact_url(self.url)} are at schema version "
                f"{current}, newer than this HiveMind knows ({len(migrations)}); upgrade hivemind-jobs"
            )
        if apply:
            return SchemaStatus(current=len(migrations), latest=len(migrations), pending=(), applied=_names(pending))
        return SchemaStatus(current=current, latest=len(migrations), pending=_names(pending))

    async def schema_status(self) -> SchemaStatus:
        return await self._with_pool(lambda: self._migrate(apply=False))

    async def schema_upgrade(self) -> SchemaStatus:
        return await self._with_pool(lambda: self._migrate(apply=True))

    def schema_sql(self, since: int = 0) -> list[SQL]:
        """The DDL for a DBA: namespace set-up, the migrations after ``since`` and their records
        in the version table (so that HiveMind then sees the schema as current)."""
        q = self.queries
        statements: list[SQL] = [*self.driver.preamble(), q["schema_version_create"]]
        for migration in load_migrations(self.package)[since:]:
            statements.extend(migration.statements(q.prefix))
            # version numbers and migration names are validated file names: safe as literals
            record = q["schema_version_insert"].replace("%(version)s", str(int(migration.version)))
            statements.append(SQL(record.replace("%(name)s", f"'{migration.name}'")))
            if migration.name == OWNER_MIGRATION:
                # the environment name and prefix are validated names: safe as literals
                claim = q["schema_owner_claim"].replace("%(environment)s", f"'{self.environment}'")
                statements.append(SQL(claim.replace("%(table_prefix)s", f"'{q.prefix}'")))
        return statements

    async def _with_pool(self, action: Callable[[], Awaitable[SchemaStatus]]) -> SchemaStatus:
        if self._open:
            return await action()
        await self.driver.open_pool()
        try:
            return await action()
        finally:
            await self.driver.close_pool()

    def subscribe_changes(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        return None

    def subscribe_finished(self, callback: Callable[[frozenset[int] | None], None]) -> Callable[[], None] | None:
        return None

    async def probe_changes(self) -> bool:
        return False

    def change_marker(self) -> object | None:
        return None

    def lock_renewer(self) -> LockRenewer:
        return ServerLockRenewer(self)

    def _require_open(self) -> None:
        if not self._open:
            raise TransactionError(
                f"the storage of environment {self.environment!r} is not open; use `async with hive:`"
            )

    # ------------------------------------------------------------------ transactions
    @asynccontextmanager
    async def transaction(
        self, *, readonly: bool = False, connection: object | None = None
    ) -> AsyncIterator[Transaction]:
        self._require_open()
        if connection is not None:
            self.driver.check_external(connection)
        transaction = ServerTransaction(self, external=connection)
        try:
            yield transaction
        except BaseException:
            await transaction.rollback()
            raise
        else:
            if not transaction.finished:
                await transaction.commit()


class _SocketWatchdog:
    """Shuts a connection's socket down when a call on it passes its deadline.

    A driver waiting for an answer that never comes (a server that hangs, a network that silently
    drops everything) would wait far past any lock timeout: TCP keepalives and user timeouts do not
    fire while something on the path still acknowledges, and a statement timeout is enforced by the
    server, which may be the one not answering. A shut-down socket makes the blocked call fail at
    once. The socket is only touched while armed, and the owner disarms before it closes the
    connection, so a descriptor number reused by another connection is never shut down.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._condition = threading.Condition()
        self._armed: tuple[int, float] | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        #: the last armed call passed its deadline (its socket was shut down)
        self.fired = False

    def arm(self, fd: int, deadline: float) -> None:
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._armed = (fd, deadline)
            self.fired = False
            self._condition.notify()

    def disarm(self) -> None:
        with self._condition:
            self._armed = None
            self._condition.notify()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._armed = None
            self._condition.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _run(self) -> None:
        with self._condition:
            while not self._closed:
                if self._armed is None:
                    self._condition.wait()
                    continue
                fd, deadline = self._armed
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                self._armed = None
                self.fired = True
                _shut_down(fd)


def _shut_down(fd: int) -> None:
    try:
        # a duplicate descriptor shares the socket: shutting it down ends the connection for the
        # original too, and closing the duplicate leaves the original's descriptor to its owner
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


def _renew_locks(session: BlockingSession, q: Mapping[str, SQL], params: JobHeartbeat) -> frozenset[int]:
    """``operations.job_heartbeat`` on a blocking session: the same queries, the same database clock."""
    now = session.dt(session.fetchall(q["clock_now"])[0][0])
    rows = session.fetchall(
        q["job_heartbeat_select"],
        {
            "job_ids": sorted(params.job_ids),
            "holder": params.holder,
            "cutoff": session.bind_dt(now - params.lock_timeout),
        },
    )
    alive = sorted(int(row[0]) for row in rows)
    if alive:
        session.execute(q["job_heartbeat"], {"job_ids": alive, "now": session.bind_dt(now)})
    return frozenset(alive)


class ServerLockRenewer:
    """Job-lock renewal on a blocking connection of its own (see
    :class:`~hivemind_jobs.storage.protocol.LockRenewer`), outside the pool and the event loop.

    Each call is bounded three ways: the driver's connect and socket timeouts, the server's
    statement and lock-wait timeouts (set when connecting), and a watchdog that shuts the socket
    down at the deadline whatever the network does. A failed call closes the connection; the next
    one connects again.
    """

    def __init__(self, storage: ServerStorage) -> None:
        self._storage = storage
        self._driver = storage.driver
        self._queries = storage.queries
        self._session: BlockingSession | None = None
        self._watchdog = _SocketWatchdog(f"hivemind-renewer-watchdog-{storage.environment}")

    def renew(self, params: JobHeartbeat, deadline_seconds: float) -> frozenset[int]:
        if not params.job_ids:
            return frozenset()
        return self._call(
            deadline_seconds, lambda session: _renew_locks(session, self._queries, params), "renew job locks"
        )

    def clock_now(self, deadline_seconds: float = 5.0) -> datetime:
        return self._call(
            deadline_seconds,
            lambda session: session.dt(session.fetchall(self._queries["clock_now"])[0][0]),
            "read the clock",
        )

    def close(self) -> None:
        self._watchdog.close()
        self._drop()

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()

    def _call(self, deadline_seconds: float, work: Callable[[BlockingSession], R], what: str) -> R:
        deadline = time.monotonic() + deadline_seconds
        where = f"{self._driver.dialect} at {self._driver.url.host}:{self._driver.url.port}"
        try:
            session = self._session
            if session is None:
                session = self._session = self._driver.connect_blocking(deadline_seconds)
            if time.monotonic() >= deadline:
                raise TimeoutError("the deadline passed while connecting")
            self._watchdog.arm(session.fileno(), deadline)
            try:
                result = work(session)
                session.commit()
            finally:
                self._watchdog.disarm()
            return result
        except Exception as error:
            timed_out = self._watchdog.fired or isinstance(error, TimeoutError)
            self._drop()
            if timed_out:
                raise StorageError(f"could not {what} in {where}: no answer within {deadline_seconds:.2f} s") from error
            if isinstance(error, OSError) or self._driver.is_driver_error(error):
                raise StorageError(f"could not {what} in {where}: {self._storage.redact(error)}") from error
            raise


def _names(migrations: Sequence[Migration]) -> tuple[str, ...]:
    return tuple(f"{migration.version:04d}_{migration.name}" for migration in migrations)


class ServerTransaction(ops.ServerOperations):
    """The operations of :class:`~hivemind_jobs.storage.protocol.Transaction` on a server database
    (bound in :mod:`~hivemind_jobs.storage.server.operations`)."""

    def __init__(self, storage: ServerStorage, *, external: Any = None) -> None:
        self._storage = storage
        self._driver = storage.driver
        self._queries = storage.queries
        self._raw: Any = None
        self._connection: Connection | None = None
        self._external = external is not None
        if external is not None:
            self._raw = external
            self._connection = self._driver.wrap(external)
            self._connection.external = True
        self._used = False
        self._finished = False
        self._interrupted = False
        self._commit_next = False

    @property
    def finished(self) -> bool:
        return self._finished

    def commit_after_next(self) -> None:
        """The next operation is the transaction's only one: one that can commit with its own
        statement does (one round trip for the whole transaction); the others commit as usual."""
        self._commit_next = True

    async def _connect(self) -> Connection:
        if self._connection is None:
            self._raw = await self._driver.acquire()
            self._connection = self._driver.wrap(self._raw)
        return self._connection

    async def _drop_connection(self, *, discard: bool) -> None:
        raw, self._raw, self._connection = self._raw, None, None
        if raw is not None and not self._external:
            await self._driver.release(raw, discard=discard)

    async def _run(self, function: Callable[..., Awaitable[R]], params: Any, final: IsFinal) -> R:
        if self._finished:
            raise TransactionError("the transaction has already been committed or rolled back")
        first = not self._used
        self._used = True
        last = self._commit_next and not self._external
        sole = first and last
        self._commit_next = False
        attempt = 0
        while True:
            try:
                connection = await self._connect()
                connection.sole = sole
                connection.last = last
                connection.retried = attempt > 0
                try:
                    result = await function(connection, self._queries, params)
                finally:
                    connection.sole = connection.last = False
                if connection.committed:  # committed with the operation's own statement
                    self._finished = True
                    await self._drop_connection(discard=self._driver.connection_lost(self._raw))
                return result
            except BaseException as error:
                if not isinstance(error, Exception):
                    # cancelled mid-statement: the connection's protocol state is unknown, so it is
                    # closed instead of rolled back (the server rolls back a closed session)
                    self._interrupted = True
                    raise
                if not self._driver.is_driver_error(error):
                    raise
                retryable = self._driver.is_retryable(error)
                if first and retryable and not self._external and attempt < _FIRST_TRY_ATTEMPTS:
                    # nothing of this transaction exists yet: start it again on a fresh connection
                    attempt += 1
                    self._storage.retried += 1
                    await self._rollback_quietly()
                    await self._drop_connection(discard=True)
                    delay = min(1.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.5)
                    shown = self._storage.redact(error)
                    _log.info("retrying a %s transaction in %.3f s: %s", self._driver.dialect, delay, shown)
                    await asyncio.sleep(delay)
                    continue
                kind = RetryableStorageError if retryable else StorageError
                raise kind(f"{self._driver.dialect}: {self._storage.redact(error)}".strip()) from error

    async def _rollback_quietly(self) -> None:
        if self._raw is None or self._external:
            return
        try:
            await self._driver.rollback(self._raw)
        except Exception as error:
            if not self._driver.is_driver_error(error):
                raise

    async def commit(self) -> None:
        if self._finished:
            raise TransactionError("the transaction has already been committed or rolled back")
        self._finished = True
        if self._raw is None or self._external:
            return
        try:
            await self._driver.commit(self._raw)
        except BaseException as error:
            await self._drop_connection(discard=True)
            if not isinstance(error, Exception) or not self._driver.is_driver_error(error):
                raise
            kind = RetryableStorageError if self._driver.is_retryable(error) else StorageError
            raise kind(f"{self._driver.dialect}: commit failed: {self._storage.redact(error)}") from error
        await self._drop_connection(discard=False)

    async def rollback(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._raw is None or self._external:
            return
        if self._interrupted:
            await self._drop_connection(discard=True)
            return
        try:
            await self._rollback_quietly()
        except BaseException:
            await self._drop_connection(discard=True)
            raise
        await self._drop_connection(discard=self._driver.connection_lost(self._raw))
