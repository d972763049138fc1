"""A thread that owns one sqlite3 connection and runs whole units of work on it.

Each submitted item is a plain function of the connection. Items carry the token of the
transaction they belong to: while a transaction is open, items of other transactions wait in a
backlog, so a transaction spanning several ``await`` points is never interleaved with another one
on the same connection. A transaction begins lazily with its first item (``BEGIN IMMEDIATE`` for
the writer, ``BEGIN`` for a reader) and ends with a commit or rollback item. An item submitted
with ``commit_when`` also commits the transaction in the same hop when ``commit_when(result)`` is
true (an operation that needs no follow-up): a whole transaction in one hop. If the operation
fails, that transaction is rolled back.

Results go back to the submitting event loop with ``call_soon_threadsafe``, so one worker serves
any number of loops (the blocking facade runs its own).

:class:`InlineWriter` runs a transaction of one operation on the caller's own thread instead, on a
connection of its own, when the file's write lock is free at that moment (it never waits for it):
the two thread wake-ups of the hop cost more than such a transaction's own work. It leaves the
WAL's checkpoints to the worker thread (:meth:`ConnectionWorker.checkpoint`).

A caller cancelled while its items wait can leave them in the backlog in any interleaving: an
operation of its transaction, then its rollback. The worker therefore never begins a transaction
for an operation whose caller is gone, takes the items of the open transaction from the backlog
before anything else, and handles a transaction whose rollback is already queued by rolling it
back first. A transaction that waits longer than ``idle_timeout`` for its next item (its caller
vanished without a rollback) is rolled back by the worker itself, with an ERROR log: the file's
write lock is never held by a transaction nobody will finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hivemind_jobs.errors import StorageClosedError, StorageError

__all__ = ["ConnectionWorker", "InlineWriter", "TransactionToken"]

_OP: Final = "op"
_COMMIT: Final = "commit"
_ROLLBACK: Final = "rollback"
_STOP: Final = "stop"
_CHECKPOINT: Final = "checkpoint"

_log = logging.getLogger("hivemind_jobs.storage.sqlite")


class TransactionToken:
    """Identity of one transaction on one worker."""

    __slots__ = ("__weakref__", "began", "finished", "owner")

    def __init__(self) -> None:
        self.began = False
        self.finished = False
        self.owner: object = None


@dataclass(slots=True)
class _Item:
    kind: str
    token: TransactionToken | None
    function: Callable[[sqlite3.Connection], Any] | None
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    commit_when: Callable[[Any], bool] | None = None


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ConnectionWorker:
    def __init__(
        self, name: str, connect: Callable[[], sqlite3.Connection], begin_sql: str, *, idle_timeout: float = 60.0
    ) -> None:
        self._name = name
        self._connect = connect
        self._begin_sql = begin_sql
        self._idle_timeout = idle_timeout
        self._inbox: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    # ------------------------------------------------------------------ submission (any thread)
    def submit(
        self,
        token: TransactionToken,
        function: Callable[[sqlite3.Connection], Any],
        *,
        commit_when: Callable[[Any], bool] | None = None,
    ) -> asyncio.Future[Any]:
        return self._submit(_OP, token, function, commit_when=commit_when)

    def finish(self, token: TransactionToken, *, commit: bool) -> asyncio.Future[Any]:
        return self._submit(_COMMIT if commit else _ROLLBACK, token, None)

    def _submit(
        self,
        kind: str,
        token: TransactionToken,
        function: Callable[[sqlite3.Connection], Any] | None,
        *,
        commit_when: Callable[[Any], bool] | None = None,
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._closed:
                raise StorageClosedError("the SQLite storage is closed")
            self._inbox.put(_Item(kind, token, function, future, loop, commit_when))
        return future

    def checkpoint(self, hold: threading.Lock) -> None:
        """Ask the thread for a passive WAL checkpoint, run once no transaction of its own is open
        and while it holds ``hold`` (an :class:`InlineWriter`'s: nothing is appended to the WAL here
        meanwhile, so the checkpoint reaches its end and the next write starts the WAL over). No
        answer; one that cannot finish is left to the next."""

        def run(connection: sqlite3.Connection) -> None:
            with hold:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

        with self._lock:
            if not self._closed:
                self._inbox.put(_Item(_CHECKPOINT, None, run, None, None))

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._inbox.put(_Item(_STOP, None, None, None, None))
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            connection = self._connect()
        except BaseException as error:
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        current: TransactionToken | None = None
        backlog: deque[_Item] = deque()
        try:
            while True:
                item = self._next(connection, current, backlog)
                if item is None:  # the open transaction was abandoned and rolled back
                    current = None
                    continue
                if item.kind == _STOP:
                    self._abort(connection)  # an abandoned open transaction is rolled back
                    closed = StorageClosedError("the SQLite storage was closed")
                    for pending in backlog:
                        self._reply(pending, None, closed)
                    while True:
                        try:
                            self._reply(self._inbox.get_nowait(), None, closed)
                        except queue.Empty:
                            break
                    return
                if item.kind == _CHECKPOINT and current is None:
                    assert item.function is not None
                    with contextlib.suppress(sqlite3.Error):
                        item.function(connection)
                    continue
                if current is not None and item.token is not current:
                    backlog.append(item)  # a checkpoint too: it runs once the transaction ended
                    continue
                if current is None and self._skip_before_begin(item, backlog):
                    continue
                current = self._handle(connection, item, current)
        finally:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def _next(
        self, connection: sqlite3.Connection, current: TransactionToken | None, backlog: deque[_Item]
    ) -> _Item | None:
        """The next item to look at: the open transaction's own items first (they may already wait
        in the backlog), then the inbox; None when the open transaction waited past the bound."""
        if current is None:
            return backlog.popleft() if backlog else self._inbox.get()
        for index, waiting in enumerate(backlog):
            if waiting.token is current:
                del backlog[index]
                return waiting
        deadline = time.monotonic() + self._idle_timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self._inbox.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._inbox.get_nowait()
            except queue.Empty:
                _log.error(
                    "%s: a transaction waited %.0f s for its next operation (its caller is gone); rolled back so "
                    "that the database is not left locked",
                    self._name,
                    self._idle_timeout,
                )
                self._abort(connection)
                current.finished = True
                return None
            if item.token is current or item.kind == _STOP:
                return item
            backlog.append(item)

    def _skip_before_begin(self, item: _Item, backlog: deque[_Item]) -> bool:
        """Whether ``item`` (no transaction open) needs no transaction: its caller was cancelled, or
        its transaction's rollback is already queued. Then the transaction is never begun: its
        queued items are answered at once (the rollback first), so it can never hold the lock."""
        token = item.token
        if token is None or token.began or item.kind != _OP:
            return False
        rolled_back = any(waiting.token is token and waiting.kind == _ROLLBACK for waiting in backlog)
        if not rolled_back:
            # nobody waits for a cancelled one; its caller's rollback (then a no-op) follows
            return item.future is not None and item.future.cancelled()
        token.finished = True
        gone = StorageError("the transaction was rolled back before it began")
        for waiting in [item, *[other for other in backlog if other.token is token]]:
            if waiting is not item:
                backlog.remove(waiting)
            self._reply(waiting, None, None if waiting.kind == _ROLLBACK else gone)
        return True

    def _handle(
        self, connection: sqlite3.Connection, item: _Item, current: TransactionToken | None
    ) -> TransactionToken | None:
        token = item.token
        assert token is not None
        if item.kind in (_COMMIT, _ROLLBACK):
            error: BaseException | None = None
            if token.began and not token.finished:
                try:
                    connection.execute("COMMIT" if item.kind == _COMMIT else "ROLLBACK")
                except sqlite3.Error as failure:
                    error = _storage_error(failure)
                    self._abort(connection)
            token.finished = True
            self._reply(item, None, error)
            return None
        # an operation
        if token.finished:
            self._reply(item, None, StorageError("the transaction has already finished"))
            return current
        if not token.began:
            try:
                connection.execute(self._begin_sql)
            except sqlite3.Error as failure:
                self._reply(item, None, _storage_error(failure))
                return None
            token.began = True
        try:
            assert item.function is not None
            result = item.function(connection)
            commit = item.commit_when is not None and item.commit_when(result)
        except BaseException as failure:
            if item.commit_when is not None:
                self._abort(connection)
                token.finished = True
            self._reply(item, None, _storage_error(failure) if isinstance(failure, sqlite3.Error) else failure)
            return None if token.finished else token
        if commit:
            try:
                connection.execute("COMMIT")
            except sqlite3.Error as failure:
                self._abort(connection)
                token.finished = True
                self._reply(item, None, _storage_error(failure))
                return None
            token.finished = True
            self._reply(item, result, None)
            return None
        self._reply(item, result, None)
        return token

    @staticmethod
    def _abort(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")

    @staticmethod
    def _reply(item: _Item, result: Any, error: BaseException | None) -> None:
        if item.future is None or item.loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            item.loop.call_soon_threadsafe(_deliver, item.future, result, error)


class InlineWriter:
    """Whole one-operation write transactions on the calling thread, on a connection of its own
    that never waits for the file's write lock (``busy_timeout`` 0): :meth:`run` returns
    ``(False, None)`` without running anything when another caller uses the connection or another
    connection (the worker thread's, another process's) holds the write lock, and the caller then
    hands the operation to the worker thread, which waits its turn. The connection does not
    checkpoint the WAL itself (that can take milliseconds): every ``checkpoint_every`` commits it
    asks the worker thread to (:meth:`ConnectionWorker.checkpoint`), which holds this writer's lock
    meanwhile."""

    def __init__(
        self, connection: sqlite3.Connection, worker: ConnectionWorker, *, checkpoint_every: int = 128
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._worker = worker
        self._every = checkpoint_every
        self._commits = 0
        self._lock = threading.Lock()

    @property
    def commits(self) -> int:
        """The transactions committed here."""
        return self._commits

    def run(self, function: Callable[[sqlite3.Connection], Any]) -> tuple[bool, Any]:
        """``(True, result)`` once ``function`` ran in a transaction of its own here and it
        committed; ``(False, None)`` when it was not run. A failure of the function or of the commit
        rolls the transaction back and is raised (an SQLite error as a ``StorageError``), as the
        worker thread would."""
        if not self._lock.acquire(blocking=False):
            return False, None
        try:
            connection = self._connection
            if connection is None:
                return False, None
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:  # the write lock is taken (or the file refuses): the worker's turn
                return False, None
            try:
                result = function(connection)
                connection.execute("COMMIT")
            except BaseException as failure:
                ConnectionWorker._abort(connection)
                if isinstance(failure, sqlite3.Error):
                    raise _storage_error(failure) from failure
                raise
            self._commits += 1
            if self._commits % self._every == 0:
                self._worker.checkpoint(self._lock)
            return True, result
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()


def _storage_error(failure: sqlite3.Error) -> StorageError:
    error = StorageError(f"SQLite: {failure}")
    error.__cause__ = failure
    return error
