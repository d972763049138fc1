"""An environment: a named, isolated HiveMind instance, composed of its services and clients.

This module is the composition root of one environment: :class:`Environment` puts the job
client, the recurring-job client, the calendars and the colony client on top of the shared
:class:`~hivemind_jobs.lifecycle.services.EnvironmentServices`; :class:`Transaction` does the same
for an application transaction spanning several calls.
"""

from __future__ import annotations

from typing import Any

from hivemind_jobs.client.colonies import ColonyClient
from hivemind_jobs.client.jobs import BackgroundJobClient
from hivemind_jobs.client.queues import QueueClient
from hivemind_jobs.lifecycle.services import EnvironmentServices, TransactionBase
from hivemind_jobs.middleware.protocol import JobMiddleware
from hivemind_jobs.recurring.calendars import CalendarRegistry
from hivemind_jobs.recurring.client import RecurringJobClient

__all__ = ["Environment", "Transaction"]


class Environment(EnvironmentServices):
    """One environment's storage, options and handlers; reach its jobs through :attr:`jobs`."""

    _jobs: BackgroundJobClient | None = None
    _recurring: RecurringJobClient | None = None
    _calendars: CalendarRegistry | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: middleware instances every colony of the environment runs outermost, in this order
        #: (see :mod:`hivemind_jobs.core.hooks`)
        self.middleware: list[JobMiddleware] = []

    @property
    def jobs(self) -> BackgroundJobClient:
        """The background-job client of this environment (each call in its own transaction)."""
        if self._jobs is None:
            self._jobs = BackgroundJobClient(self)
        return self._jobs

    @property
    def recurring(self) -> RecurringJobClient:
        """The recurring jobs of this environment."""
        if self._recurring is None:
            self._recurring = RecurringJobClient(self, self.jobs, self.calendars)
        return self._recurring

    @property
    def calendars(self) -> CalendarRegistry:
        """Calendars recurring schedules can name: the built-ins and those registered here."""
        if self._calendars is None:
            self._calendars = CalendarRegistry()
        return self._calendars

    @property
    def colonies(self) -> ColonyClient:
        """The colonies (worker processes) of this environment."""
        return ColonyClient(self)

    @property
    def queues(self) -> QueueClient:
        """The queues of this environment: pause and resume them."""
        return QueueClient(self)

    def transaction(self, *, connection: object | None = None) -> Transaction:
        """``async with env.transaction() as tx:`` - everything done through ``tx`` commits together.

        With ``connection`` - the application's own connection to this environment's database
        (``psycopg.AsyncConnection``, ``asyncmy`` or ``aiomysql`` connection or ``sqlite3.Connection``) inside a
        transaction it opened - jobs are written in that transaction: they commit or roll back with
        the application's own data, when the application commits or rolls back.
        """
        return Transaction(self, connection=connection)


class Transaction(TransactionBase):
    """A transaction spanning any number of client calls of one environment.

    Every call made through :attr:`jobs` or :attr:`recurring` runs in it. On a clean exit of the
    ``async with`` block it commits, on an exception it rolls back; :meth:`commit` and
    :meth:`rollback` end it early. Nothing it writes is visible to other connections before it
    commits.
    """

    environment: Environment
    _jobs: BackgroundJobClient | None = None
    _recurring: RecurringJobClient | None = None

    def __init__(self, environment: Environment, *, connection: object | None = None) -> None:
        super().__init__(environment, connection=connection)

    @property
    def jobs(self) -> BackgroundJobClient:
        if self._jobs is None:
            self._jobs = BackgroundJobClient(self.environment, transaction=self)
        return self._jobs

    @property
    def recurring(self) -> RecurringJobClient:
        """Recurring jobs created, updated, paused, resumed, triggered or deleted through this client
        are written in this transaction (reads through it see its own writes)."""
        if self._recurring is None:
            environment = self.environment
            self._recurring = RecurringJobClient(environment, self.jobs, environment.calendars, transaction=self)
        return self._recurring
