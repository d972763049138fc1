"""SQLite storage: stdlib ``sqlite3``, one writer thread per database file per process.

Every environment that uses the same file in this process shares one writer connection (SQLite
allows one writer per file anyway) and one reader connection. A write transaction holds the writer
from its first operation to its commit; readers see committed data only (WAL). Writes use
``BEGIN IMMEDIATE`` so that lock waits happen up front, bounded by the busy timeout.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, with optional query
parameters ``synchronous`` (``NORMAL`` default, or ``FULL``) and ``busy_timeout`` (seconds, 30).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

from hivemind_jobs.errors import ConfigurationError, SchemaError, StorageError, TransactionError
from hivemind_jobs.storage.binding import IsFinal, always
from hivemind_jobs.storage.protocol import (
    Capabilities,
    JobHeartbeat,
    LockRenewer,
    SchemaStatus,
    StorageInfo,
    Transaction,
)
from hivemind_jobs.storage.sql import (
    OWNER_MIGRATION,
    Migration,
    QueryBook,
    check_owner,
    check_table_names,
    load_migrations,
    owner_version,
)
from hivemind_jobs.storage.sqlite import operations as ops
from hivemind_jobs.storage.sqlite.worker import ConnectionWorker, InlineWriter, TransactionToken

__all__ = ["SQLiteStorage"]

R = TypeVar("R")
_PACKAGE = __name__.rpartition(".")[0]
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class _Engine:
    """The writer and reader threads of one database file (shared by environments)."""

    def __init__(self, path: Path, synchronous: str, busy_timeout: float) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.users = 0
        #: open write transactions and the task that opened each: a task that opens a second one
        #: would wait for its own first one forever, so that is refused with a clear error instead.
        self.open_writes: set[TransactionToken] = set()
        #: one-operation write transactions on the caller's thread while the write lock is free;
        #: not with synchronous=FULL, whose commit waits for the disk
        self.inline: InlineWriter | None = None
        name = path.name
        self.writer = ConnectionWorker(f"hivemind-sqlite-writer:{name}", self._connect_writer, "BEGIN IMMEDIATE")
        try:
            self.reader = ConnectionWorker(f"hivemind-sqlite-reader:{name}", self._connect_reader, "BEGIN")
        except BaseException:
            self.writer.close()
            raise
        if synchronous != "FULL":
            try:
                self.inline = InlineWriter(self._connect_inline(), self.writer)
            except BaseException:
                self.close()
                raise

    def _configure(self, connection: sqlite3.Connection) -> sqlite3.Connection:
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute(f"PRAGMA synchronous = {self.synchronous}")
        return connection

    def _connect_writer(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            connection.close()
            raise ConfigurationError(f"SQLite file {self.path} cannot use WAL journaling (got {mode})")
        return self._configure(connection)

    def _connect_inline(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
        self._configure(connection)
        connection.execute("PRAGMA busy_timeout = 0")  # never waits for the write lock
        connection.execute("PRAGMA wal_autocheckpoint = 0")  # the writer thread checkpoints
        return connection

    def _connect_reader(self) -> sqlite3.Connection:
        uri = f"{self.path.as_uri()}?mode=ro"
        connection = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        return self._configure(connection)

    def close(self) -> None:
        if self.inline is not None:
            self.inline.close()
        self.writer.close()
        self.reader.close()


_engines: dict[Path, _Engine] = {}
_engines_lock = threading.Lock()


def _acquire_engine(path: Path, synchronous: str, busy_timeout: float) -> _Engine:
    with _engines_lock:
        engine = _engines.get(path)
        if engine is None:
            engine = _Engine(path, synchronous, busy_timeout)
            _engines[path] = engine
        elif engine.synchronous != synchronous:
            raise ConfigurationError(
                f"SQLite file {path} is already open in this process with synchronous={engine.synchronous}; "
                f"use the same setting for every environment on one file (got {synchronous})"
            )
        engine.users += 1
        return engine


def _release_engine(engine: _Engine) -> None:
    with _engines_lock:
        engine.users -= 1
        if engine.users > 0:
            return
        _engines.pop(engine.path, None)
    engine.close()


#: how long closing waits for the connection threads to end (a thread blocked on a locked file
#: finishes its statement first, up to the busy timeout: it is not waited for that long)
_CLOSE_WAIT = 10.0


async def _release_engine_async(engine: _Engine) -> None:
    """:func:`_release_engine` without blocking the event loop, and cancellable: a writer that waits
    for another process's lock on the file holds neither the loop nor a bounded close (its thread is a
    daemon thread: it ends with its statement, or with the process)."""
    with _engines_lock:
        engine.users -= 1
        if engine.users > 0:
            return
        _engines.pop(engine.path, None)
    workers = (engine.writer, engine.reader)
    for worker in workers:
        worker.close(timeout=0)  # asks the thread to stop after its current item
    deadline = time.monotonic() + _CLOSE_WAIT
    while any(worker._thread.is_alive() for worker in workers) and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread ending sets no event
        await asyncio.sleep(0.01)


def parse_sqlite_url(url: str) -> tuple[Path, str, float]:
    """``sqlite:///path?synchronous=FULL&busy_timeout=5`` -> (absolute path, synchronous, timeout)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigurationError(f"not an SQLite URL: {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"SQLite URLs have no host: use sqlite:///relative.db or sqlite:////abs.db, got {url!r}"
        )
    raw_path = unquote(parts.path)
    if not raw_path or raw_path == "/":
        raise ConfigurationError(f"SQLite URL {url!r} names no file; use sqlite:///hivemind.db")
    if raw_path in ("/:memory:", ":memory:"):
        raise ConfigurationError(
            "in-memory SQLite cannot be shared by HiveMind's writer and reader connections; use a file "
            "(a temporary one in tests)"
        )
    # sqlite:///rel.db -> "/rel.db" (relative); sqlite:////abs.db -> "//abs.db" (absolute)
    path = Path(raw_path[1:]) if raw_path.startswith("/") else Path(raw_path)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"synchronous", "busy_timeout"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite URL option(s) {sorted(unknown)}; known: synchronous, busy_timeout")
    synchronous = query.get("synchronous", ["NORMAL"])[-1].upper()
    if synchronous not in _SYNCHRONOUS:
        raise ConfigurationError(f"synchronous must be one of {_SYNCHRONOUS}, got {synchronous!r}")
    try:
        busy_timeout = float(query.get("busy_timeout", ["30"])[-1])
    except ValueError:
        raise ConfigurationError("busy_timeout must be a number of seconds") from None
    if busy_timeout <= 0:
        raise ConfigurationError("busy_timeout must be positive")
    return Path(os.path.abspath(path)), synchronous, busy_timeout


class SQLiteStorage:
    """One environment's tables (``table_prefix``) in one SQLite file."""

    capabilities = Capabilities(
        dialect="sqlite",
        single_writer=True,
        skip_locked=False,
        listen_notify=False,
        returning_on_update=True,
        transactional_ddl=True,
    )

    def __init__(
        self,
        path: Path,
        *,
        environment: str,
        table_prefix: str,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self._wal_path = Path(f"{self.path}-wal")
        self.environment = environment
        self.queries = QueryBook.load(_PACKAGE, table_prefix)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._engine: _Engine | None = None
        self._schema_version = 0

    @classmethod
    def from_url(cls, url: str, *, environment: str, table_prefix: str) -> SQLiteStorage:
        path, synchronous, busy_timeout = parse_sqlite_url(url)
        return cls(
            path, environment=environment, table_prefix=table_prefix, synchronous=synchronous, busy_timeout=busy_timeout
        )

    @property
    def info(self) -> StorageInfo:
        return StorageInfo(
            url=f"sqlite:///{self.path}",
            environment=self.environment,
            table_prefix=self.queries.prefix,
            schema_version=self._schema_version,
            extras={"synchronous": self._synchronous},
        )

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if self._engine is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = _acquire_engine(self.path, self._synchronous, self._busy_timeout)
        try:
            current = await asyncio.to_thread(self._current_schema)
            if current is None:
                current = await engine.writer.submit(TransactionToken(), self._migrate, commit_when=always)
            self._schema_version = current
        except BaseException:
            _release_engine(engine)
            raise
        self._engine = engine

    def _check_names(self, connection: sqlite3.Connection, migrations: list[Migration]) -> int | None:
        """Refuse tables another environment's names clash with (SQLite ignores case in table
        names) or that another prefix owns; the schema version, None without a version table."""
        prefix = self.queries.prefix
        existing = connection.execute(
            "SELECT name FROM sqlite_master WHERE lower(substr(name, 1, ?)) = ?", (len(prefix), prefix.lower())
        ).fetchall()
        where = str(self.path)
        if not check_table_names(_PACKAGE, self.environment, prefix, [row[0] for row in existing], where=where):
            return None
        current = int(connection.execute(self.queries["schema_version_current"]).fetchone()[0])
        if current >= owner_version(migrations):
            owner = connection.execute(self.queries["schema_owner_get"]).fetchone()
            check_owner(owner, self.environment, prefix, where=where)
        return current

    def _current_schema(self) -> int | None:
        """The schema version when the tables are current and this environment owns them (checked
        without a write transaction, which another connection's open write would hold up: an
        application's request writing jobs on its own connection), else None."""
        if not self.path.exists():
            return None
        migrations = load_migrations(_PACKAGE)
        connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=self._busy_timeout)
        try:
            current = self._check_names(connection, migrations)
            if current != len(migrations):
                return None
            owned = connection.execute(self.queries["schema_owner_get"]).fetchone() is not None
            return current if owned else None
        finally:
            connection.close()

    def _migrate(self, connection: sqlite3.Connection) -> int:
        # Runs in one BEGIN IMMEDIATE transaction: SQLite's DDL is transactional, so a migration
        # that fails half-way leaves nothing behind, and other processes wait for the check and
        # the creation together.
        q = self.queries
        migrations = load_migrations(_PACKAGE)
        found = self._check_names(connection, migrations)
        if found is None:
            connection.execute(q["schema_version_create"])
        current = found or 0
        if current > len(migrations):
            raise SchemaError(
                f"the tables with prefix {q.prefix!r} in {self.path} are at schema version {current}, newer than "
                f"this HiveMind knows ({len(migrations)}); upgrade hivemind-jobs"
            )
        for migration in migrations[current:]:
            for statement in migration.statements(q.prefix):
                connection.execute(statement)
            connection.execute(
                q["schema_version_insert"], {"version": migration.version, "name": migration.name, "now": ops.now_us()}
            )
        connection.execute(q["schema_owner_claim"], {"environment": self.environment, "table_prefix": q.prefix})
        return len(migrations)

    async def schema_status(self) -> SchemaStatus:
        latest = len(load_migrations(_PACKAGE))
        current = self._schema_version if self._engine is not None else await asyncio.to_thread(self._read_version)
        names = [f"{m.version:04d}_{m.name}" for m in load_migrations(_PACKAGE)[current:]]
        return SchemaStatus(current=current, latest=latest, pending=tuple(names))

    def _read_version(self) -> int:
        if not self.path.exists():
            return 0
        connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        try:
            return self._check_names(connection, load_migrations(_PACKAGE)) or 0
        finally:
            connection.close()

    async def schema_upgrade(self) -> SchemaStatus:
        before = await self.schema_status()
        if self._engine is None:
            await self.open()
            await self.close()
        return SchemaStatus(current=before.latest, latest=before.latest, applied=before.pending)

    def schema_sql(self, since: int = 0) -> list[str]:
        """The DDL for a DBA, with the records of the versions it creates (so HiveMind then sees
        the file as current)."""
        q = self.queries
        statements: list[str] = [q["schema_version_create"]]
        for migration in load_migrations(_PACKAGE)[since:]:
            statements.extend(migration.statements(q.prefix))
            # version numbers and migration names are validated file names: safe as literals
            statements.append(
                q["schema_version_insert"]
                .replace(":version", str(int(migration.version)))
                .replace(":name", f"'{migration.name}'")
                .replace(":now", "CAST(strftime('%s', 'now') AS INTEGER) * 1000000")
            )
            if migration.name == OWNER_MIGRATION:
                # the environment name and prefix are validated names: safe as literals
                statements.append(
                    q["schema_owner_claim"]
                    .replace(":environment", f"'{self.environment}'")
                    .replace(":table_prefix", f"'{q.prefix}'")
                )
        return statements

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await _release_engine_async(engine)

    def subscribe_changes(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        return None

    def subscribe_finished(self, callback: Callable[[frozenset[int] | None], None]) -> Callable[[], None] | None:
        return None

    async def probe_changes(self) -> bool:
        return False  # the change marker is a local file check

    def change_marker(self) -> object | None:
        """The WAL file's modification time and size: every commit of any process appends to it."""
        marker: list[tuple[int, int] | None] = []
        for path in (self._wal_path, self.path):
            try:
                status = os.stat(path)
            except OSError:
                marker.append(None)
                continue
            marker.append((status.st_mtime_ns, status.st_size))
        return tuple(marker)

    def lock_renewer(self) -> LockRenewer:
        return SQLiteLockRenewer(self.path, self.queries, self._synchronous)

    def _require_engine(self) -> _Engine:
        if self._engine is None:
            raise TransactionError(
                f"the storage of environment {self.environment!r} is not open; use `async with hive:`"
            )
        return self._engine

    # ------------------------------------------------------------------ transactions
    @asynccontextmanager
    async def transaction(
        self, *, readonly: bool = False, connection: object | None = None
    ) -> AsyncIterator[Transaction]:
        engine = self._require_engine()
        if connection is not None:
            external = SQLiteExternalTransaction(self, self._check_external(connection))
            try:
                yield external
            finally:
                external.close()
            return
        token = TransactionToken()
        if not readonly:
            owner = asyncio.current_task()
            if owner is not None and any(
                other.owner is owner and not other.finished for other in list(engine.open_writes)
            ):
                raise TransactionError(
                    f"this task already has a write transaction open on {engine.path}; a second one would "
                    "wait for it forever. Make the call through the open transaction (tx.jobs...) or after it ends"
                )
            token.owner = owner
            engine.open_writes.add(token)
        if readonly:
            transaction = SQLiteTransaction(self, engine.reader, token)
        else:
            transaction = SQLiteTransaction(self, engine.writer, token, engine.inline)
        try:
            yield transaction
        except BaseException:
            await transaction.rollback()
            raise
        else:
            if not transaction.finished:
                await transaction.commit()
        finally:
            engine.open_writes.discard(token)

    def _check_external(self, connection: object) -> sqlite3.Connection:
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigurationError(
                f"an SQLite environment runs on a sqlite3.Connection, got {type(connection).__name__}"
            )
        files = [row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"]
        if not files or not files[0] or os.path.abspath(files[0]) != str(self.path):
            raise ConfigurationError(
                f"the connection is not on this environment's database file {self.path} "
                f"(it is on {files[0] if files else '?'})"
            )
        if connection.isolation_level is None and not connection.in_transaction:
            raise TransactionError(
                "the sqlite3 connection is in autocommit mode outside a transaction: jobs would commit on their own; "
                "run `BEGIN` first or use the default isolation level"
            )
        return connection


class SQLiteLockRenewer:
    """Job-lock renewal on a sqlite3 connection of its own (see
    :class:`~hivemind_jobs.storage.protocol.LockRenewer`): not the process's writer thread, whose
    queue a blocked event loop or a long transaction could hold up.

    The wait for the file's write lock is bounded by a busy timeout of the call's deadline, and the
    statements by a progress handler that interrupts them once it has passed.
    """

    def __init__(self, path: Path, queries: QueryBook, synchronous: str) -> None:
        self._path = path
        self._queries = queries
        self._synchronous = synchronous
        self._connection: sqlite3.Connection | None = None

    def renew(self, params: JobHeartbeat, deadline_seconds: float) -> frozenset[int]:
        if not params.job_ids:
            return frozenset()
        return self._call(
            deadline_seconds,
            lambda con: ops.job_heartbeat(con, self._queries, params),
            write=True,
            what="renew job locks",
        )

    def clock_now(self, deadline_seconds: float = 5.0) -> datetime:
        result: datetime = self._call(
            deadline_seconds, lambda con: ops.clock_now(con, self._queries), write=False, what="read the clock"
        )
        return result

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _call(self, deadline_seconds: float, work: Callable[[sqlite3.Connection], R], *, write: bool, what: str) -> R:
        deadline = time.monotonic() + deadline_seconds
        try:
            connection = self._connection
            if connection is None:
                connection = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False, timeout=deadline_seconds
                )
                self._connection = connection
                connection.execute(f"PRAGMA synchronous = {self._synchronous}")  # one of _SYNCHRONOUS
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the deadline passed while connecting")
            connection.execute(f"PRAGMA busy_timeout = {max(1, int(remaining * 1000))}")
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            try:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                result = work(connection)
                connection.execute("COMMIT")
            finally:
                connection.set_progress_handler(None, 0)
            return result
        except (sqlite3.Error, TimeoutError) as error:
            self.close()  # rolls back whatever is open; the next call connects again
            raise StorageError(
                f"could not {what} in SQLite file {self._path} within {deadline_seconds:.2f} s: {error}"
            ) from error


class SQLiteTransaction(ops.SQLiteOperations):
    """The operations of :class:`~hivemind_jobs.storage.protocol.Transaction` on SQLite: each one a
    unit of work on the connection's thread (the operations are bound in
    :mod:`~hivemind_jobs.storage.sqlite.operations`)."""

    def __init__(
        self,
        storage: SQLiteStorage,
        worker: ConnectionWorker,
        token: TransactionToken,
        inline: InlineWriter | None = None,
    ) -> None:
        self._queries = storage.queries
        self._worker = worker
        self._inline = inline
        self._token = token
        self._used = False
        self._finished = False
        self._commit_next = False

    @property
    def finished(self) -> bool:
        return self._finished

    def commit_after_next(self) -> None:
        self._commit_next = True

    async def _run(self, function: Callable[..., R], params: Any, final: IsFinal) -> R:
        if self._finished:
            raise TransactionError("the transaction has already been committed or rolled back")
        first = not self._used
        self._used = True
        queries = self._queries
        commit_when = final if self._commit_next else None
        self._commit_next = False
        if first and commit_when is always and self._inline is not None and _small(params):
            # the whole transaction is this operation: here, if the write lock is free right now
            # (a large one goes to the writer thread: it would hold up this thread's event loop)
            ran, value = self._inline.run(lambda connection: function(connection, queries, params))
            if ran:
                self._finished = True
                return cast(R, value)
        # On failure or cancellation the caller's context manager rolls back; the worker treats that
        # rollback as a no-op when it already ended the transaction, so it is always safe to send.
        result: R = await self._worker.submit(
            self._token, lambda connection: function(connection, queries, params), commit_when=commit_when
        )
        if commit_when is not None and commit_when(result):
            self._finished = True
        return result

    async def commit(self) -> None:
        if self._finished:
            raise TransactionError("the transaction has already been committed or rolled back")
        self._finished = True
        if self._used:
            await self._worker.finish(self._token, commit=True)

    async def rollback(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._used:
            await self._worker.finish(self._token, commit=False)


#: most rows an operation run on the caller's thread writes (a create_many of more goes to the writer)
INLINE_ROWS = 16


def _small(params: object) -> bool:
    """Whether an operation's parameters are few rows (or one)."""
    return not isinstance(params, list | tuple) or len(params) <= INLINE_ROWS


class SQLiteExternalTransaction(SQLiteTransaction):
    """Operations run directly on the application's own sqlite3 connection, in the calling thread,
    inside the application's transaction: never committed or rolled back here."""

    def __init__(self, storage: SQLiteStorage, connection: sqlite3.Connection) -> None:
        super().__init__(storage, storage._require_engine().writer, TransactionToken())  # never used
        self._connection: sqlite3.Connection | None = connection

    def close(self) -> None:
        self._finished = True
        self._connection = None

    async def _run(self, function: Callable[..., R], params: Any, final: IsFinal) -> R:
        if self._finished or self._connection is None:
            raise TransactionError("the transaction has already been committed or rolled back")
        result: R = function(self._connection, self._queries, params)
        return result

    async def commit(self) -> None:
        if self._finished:
            raise TransactionError("the transaction has already been committed or rolled back")
        self._finished = True

    async def rollback(self) -> None:
        self._finished = True
