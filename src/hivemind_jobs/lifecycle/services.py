"""The services of one environment (storage, options, codec, clock, mediator) and its transactions.

:class:`EnvironmentServices` is what the lifecycle rules and every client of an environment share;
the composition root (:class:`hivemind_jobs.Environment`) adds the job, recurring and colony
clients on top. :class:`TransactionBase` is an application transaction spanning several calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from hivemind_jobs.core.clock import Clock
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.hooks import CreateHook
from hivemind_jobs.core.invocation import Activator
from hivemind_jobs.core.names import validate_environment_name
from hivemind_jobs.core.options import Options
from hivemind_jobs.errors import HiveMindError, TransactionError
from hivemind_jobs.mediator import Mediator
from hivemind_jobs.storage.protocol import Storage, StorageInfo
from hivemind_jobs.storage.protocol import Transaction as StorageTransaction

__all__ = ["EnvironmentServices", "TransactionBase"]

_clock_log = logging.getLogger("hivemind_jobs.clock")
_log = logging.getLogger("hivemind_jobs.environment")
#: while a clock stays off, its WARNING is repeated at most this often (seconds) per environment
CLOCK_SKEW_WARNING_INTERVAL = 600.0


class EnvironmentServices:
    """One environment's storage, options, codec, clock and handlers: what the lifecycle rules and
    every client of the environment share. :class:`hivemind_jobs.Environment` adds the clients."""

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
        #: called around each create/create_many (see :mod:`hivemind_jobs.core.hooks`)
        self.create_hooks: list[CreateHook] = []
        self._wake_listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[frozenset[str]], None]]] = []
        self._pause_listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._clock_warned_at: float | None = None  # time.monotonic() of the last skew warning
        self._clock_skewed = False

    def __repr__(self) -> str:
        return f"<Environment {self.name!r} {self.storage.info.url}>"

    @property
    def info(self) -> StorageInfo:
        return self.storage.info

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

    def add_pause_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` (on the running loop) whenever this process paused or resumed a queue;
        returns a function that removes the listener. Colonies use it to re-read the paused queues
        at once instead of at their next poll."""
        entry = (asyncio.get_running_loop(), listener)
        self._pause_listeners.append(entry)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._pause_listeners.remove(entry)

        return remove

    def queue_pauses_changed(self) -> None:
        """Tell this process's colonies that the paused queues changed."""
        for loop, listener in list(self._pause_listeners):
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(listener)

    # ------------------------------------------------------------------ clock skew
    async def check_clock(self, tx: StorageTransaction) -> timedelta | None:
        """Compare this process's clock with the database's (one query in ``tx``); log a WARNING on
        the ``hivemind_jobs.clock`` logger when they differ by more than
        ``Options.clock_skew_warning`` (repeated at most every ten minutes while it lasts).

        Returns the skew (positive: this process's clock is ahead), or None when the check is off.
        """
        if self.options.clock_skew_warning is None:
            return None
        before = self.clock.now()
        database_now = await tx.clock_now()
        after = self.clock.now()
        # the database read its clock somewhere between the two local readings
        half_round_trip = (after - before) / 2
        skew = before + half_round_trip - database_now
        self.note_clock_skew(skew, uncertainty=half_round_trip)
        return skew

    def note_clock_skew(self, skew: timedelta, *, uncertainty: timedelta = timedelta(0)) -> None:
        """Warn (rate-limited) when ``skew`` (this clock minus the database's, known within
        ``uncertainty``) is surely beyond ``Options.clock_skew_warning``."""
        threshold = self.options.clock_skew_warning
        if threshold is None:
            return
        if abs(skew) - abs(uncertainty) > threshold:
            self._clock_skewed = True
            now = time.monotonic()
            if self._clock_warned_at is not None and now - self._clock_warned_at < CLOCK_SKEW_WARNING_INTERVAL:
                return
            self._clock_warned_at = now
            direction = "ahead of" if skew > timedelta(0) else "behind"
            _clock_log.warning(
                "the clock of this process is %.3f s %s the database clock of environment %r (%s), more than "
                "Options.clock_skew_warning (%.3f s). Due times, delays and locks use the database clock, but "
                "the times this process stamps (state elected_at, lead times) are off by as much: synchronize "
                "this machine's clock (NTP)",
                abs(skew).total_seconds(),
                direction,
                self.name,
                self.storage.info.url,
                threshold.total_seconds(),
            )
        elif self._clock_skewed:
            self._clock_skewed = False
            _clock_log.info(
                "the clock of this process is back within %.3f s of the database clock of environment %r",
                threshold.total_seconds(),
                self.name,
            )

    async def open(self) -> None:
        await self.storage.open()
        check_limits = getattr(self.storage, "check_limits", None)
        if check_limits is not None:  # a backend whose statements have a size ceiling warns about the limits
            check_limits(self.options.limits)
        if self.options.clock_skew_warning is None:
            return
        try:
            async with self.storage.transaction(readonly=True) as tx:
                await self.check_clock(tx)
        except HiveMindError as error:  # only a warning was at stake: the environment is usable
            _clock_log.debug("could not compare the clock with the database of environment %r: %s", self.name, error)

    async def close(self, timeout: float | None = None) -> None:
        """Close the storage. With ``timeout`` (seconds), give up after that long and go on: a database
        that does not answer cannot hold a stopping process (its connections are left to the exit)."""
        if timeout is None:
            await self.storage.close()
            return
        closing = asyncio.ensure_future(self.storage.close())
        try:
            done, _ = await asyncio.wait([closing], timeout=max(0.0, timeout))
        except asyncio.CancelledError:
            closing.cancel()
            raise
        if not done:
            closing.cancel()
            await asyncio.sleep(0)  # one step to see the cancellation; the rest is not waited for
            _log.warning(
                "environment %r: its storage did not close within %.1f s (database unreachable?); given up",
                self.name,
                timeout,
            )
            return
        closing.result()


def application_connection(connection: object | None) -> object | None:
    """The driver connection to write in: ``connection`` itself, or the DB-API connection under a
    web framework's connection object (Django's ``django.db.connection`` / ``connections[alias]``,
    which must be inside ``transaction.atomic()``). Called on the application's thread: Django
    checks which thread uses its connection objects."""
    if connection is None or not type(connection).__module__.startswith("django."):
        return connection
    django_connection: Any = connection
    if not django_connection.in_atomic_block:
        raise TransactionError(
            "Django's connection is in autocommit mode here: the jobs would commit on their own. Create them "
            "inside `with transaction.atomic():` (or a view under ATOMIC_REQUESTS)"
        )
    django_connection.ensure_connection()
    raw: object = django_connection.connection
    return raw


class TransactionBase:
    """A transaction spanning any number of client calls of one environment.

    Every call made through its clients runs in it. On a clean exit of the ``async with`` block it
    commits, on an exception it rolls back; :meth:`commit` and :meth:`rollback` end it early.
    Nothing it writes is visible to other connections before it commits.
    """

    def __init__(self, environment: EnvironmentServices, *, connection: object | None = None) -> None:
        self.environment = environment
        self.connection = application_connection(connection)
        self._context: AbstractAsyncContextManager[StorageTransaction] | None = None
        self._storage_tx: StorageTransaction | None = None
        self._done = False
        #: queues that received jobs in this transaction (drones are woken at commit)
        self.enqueued: set[str] = set()

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

    async def __aenter__(self) -> Self:
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
