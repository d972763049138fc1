"""An environment: a named, isolated HiveMind instance (storage + options + mediator)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING

from hivemind_jobs.core.clock import Clock
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import Activator
from hivemind_jobs.core.names import validate_environment_name
from hivemind_jobs.core.options import Options
from hivemind_jobs.errors import TransactionError
from hivemind_jobs.mediator import Mediator
from hivemind_jobs.storage import Storage, StorageInfo
from hivemind_jobs.storage import Transaction as StorageTransaction

if TYPE_CHECKING:
    from hivemind_jobs.client.colonies import ColonyClient
    from hivemind_jobs.client.jobs import BackgroundJobClient
    from hivemind_jobs.recurring.calendars import CalendarRegistry
    from hivemind_jobs.recurring.client import RecurringJobClient

__all__ = ["Environment", "Transaction"]


class Environment:
    """One environment's storage, options and handlers; reach its jobs through :attr:`jobs`."""

    def __init__(
        self,
        name: str,
        storage: Storage,
        *,
        options: Options,
        mediator: Mediator,
        codec: Codec,
        clock: Clock,
        activator: Activator,
    ) -> None:
        self.name = validate_environment_name(name)
        self.storage = storage
        self.options = options
        self.mediator = mediator
        self.codec = codec
        self.clock = clock
        self.activator = activator
        self._jobs: BackgroundJobClient | None = None
        self._recurring: RecurringJobClient | None = None
        self._calendars: CalendarRegistry | None = None
        self._wake_listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[frozenset[str]], None]]] = []

    def __repr__(self) -> str:
        return f"<Environment {self.name!r} {self.storage.info.url}>"

    @property
    def info(self) -> StorageInfo:
        return self.storage.info

    @property
    def jobs(self) -> BackgroundJobClient:
        """The background-job client of this environment (each call in its own transaction)."""
        if self._jobs is None:
            from hivemind_jobs.client.jobs import BackgroundJobClient

            self._jobs = BackgroundJobClient(self)
        return self._jobs

    @property
    def recurring(self) -> RecurringJobClient:
        """The recurring jobs of this environment."""
        if self._recurring is None:
            from hivemind_jobs.recurring.client import RecurringJobClient

            self._recurring = RecurringJobClient(self)
        return self._recurring

    @property
    def calendars(self) -> CalendarRegistry:
        """Calendars recurring schedules can name: the built-ins and those registered here."""
        if self._calendars is None:
            from hivemind_jobs.recurring.calendars import CalendarRegistry

            self._calendars = CalendarRegistry()
        return self._calendars

    @property
    def colonies(self) -> ColonyClient:
        """The colonies (worker processes) of this environment."""
        from hivemind_jobs.client.colonies import ColonyClient

        return ColonyClient(self)

    def transaction(self, *, connection: object | None = None) -> Transaction:
        """``async with env.transaction() as tx:`` - everything done through ``tx`` commits together.

        With ``connection`` - the application's own connection to this environment's database
        (``psycopg.AsyncConnection``, ``aiomysql`` connection or ``sqlite3.Connection``) inside a
        transaction it opened - jobs are written in that transaction: they commit or roll back with
        the application's own data, when the application commits or rolls back.
        """
        return Transaction(self, connection=connection)

    # ------------------------------------------------------------------ in-process wake-ups
    def add_wake_listener(self, listener: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``listener(queues)`` (on the running loop) whenever a commit in this process enqueued
        jobs; returns a function that removes the listener. Drones use it to start at once."""
        entry = (asyncio.get_running_loop(), listener)
        self._wake_listeners.append(entry)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._wake_listeners.remove(entry)

        return remove

    def wake(self, queues: Iterable[str]) -> None:
        """Tell this process's drones that jobs were committed to ``queues``."""
        if not self._wake_listeners:
            return
        names = frozenset(queues)
        for loop, listener in list(self._wake_listeners):
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(listener, names)

    async def open(self) -> None:
        await self.storage.open()

    async def close(self) -> None:
        await self.storage.close()


class Transaction:
    """A transaction spanning any number of client calls of one environment.

    Every call made through :attr:`jobs` runs in it. On a clean exit of the ``async with`` block it
    commits, on an exception it rolls back; :meth:`commit` and :meth:`rollback` end it early.
    Nothing it writes is visible to other connections before it commits.
    """

    def __init__(self, environment: Environment, *, connection: object | None = None) -> None:
        self.environment = environment
        self.connection = connection
        self._context: AbstractAsyncContextManager[StorageTransaction] | None = None
        self._storage_tx: StorageTransaction | None = None
        self._jobs: BackgroundJobClient | None = None
        self._recurring: RecurringJobClient | None = None
        self._done = False
        #: queues that received jobs in this transaction (drones are woken at commit)
        self.enqueued: set[str] = set()

    @property
    def jobs(self) -> BackgroundJobClient:
        if self._jobs is None:
            from hivemind_jobs.client.jobs import BackgroundJobClient

            self._jobs = BackgroundJobClient(self.environment, transaction=self)
        return self._jobs

    @property
    def recurring(self) -> RecurringJobClient:
        """Recurring jobs created, updated, paused, resumed, triggered or deleted through this client
        are written in this transaction (reads through it see its own writes)."""
        if self._recurring is None:
            from hivemind_jobs.recurring.client import RecurringJobClient

            self._recurring = RecurringJobClient(self.environment, transaction=self)
        return self._recurring

    @property
    def storage_transaction(self) -> StorageTransaction:
        if self._storage_tx is None:
            raise TransactionError("the transaction is not open; use `async with hive.transaction() as tx:`")
        if self._done:
            raise TransactionError("the transaction has already been committed or rolled back")
        return self._storage_tx

    @property
    def is_active(self) -> bool:
        return self._storage_tx is not None and not self._done

    async def __aenter__(self) -> Transaction:
        if self._context is not None:
            raise TransactionError("a Transaction object can be entered once; open a new one")
        self._context = self.environment.storage.transaction(connection=self.connection)
        self._storage_tx = await self._context.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._context is not None
        already_done = self._done
        self._done = True
        await self._context.__aexit__(exc_type, exc, tb)
        if exc is None and not already_done and self.enqueued:
            self.environment.wake(self.enqueued)

    async def commit(self) -> None:
        transaction = self.storage_transaction
        self._done = True
        await transaction.commit()
        if self.enqueued:
            self.environment.wake(self.enqueued)

    async def rollback(self) -> None:
        transaction = self.storage_transaction
        self._done = True
        await transaction.rollback()
