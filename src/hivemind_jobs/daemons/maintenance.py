"""Retention cleanup: removes completed jobs, old job and daemon logs and old occurrence keys.

Every colony runs the ``hm.maintenance`` daemon; a lease in the database (``maintenance.0`` ..
``maintenance.<N-1>``, N = ``ColonyOptions.maintenance_concurrency``) bounds how many colonies of an
environment clean up at the same time. A pass deletes in batches, one transaction per batch, so
no transaction holds many locks for long and the workers of the same process keep running in
between; it goes on while batches come back full and stops at the first short one.

The lease is not a correctness guard: every purge only deletes rows that are old enough and
unlocked (skipping rows others hold), so two passes that overlap (a lease that expired during a
batch stalled for longer than its TTL) waste work but never delete the wrong rows.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from hivemind_jobs.daemons.periodic import PeriodicDaemon
from hivemind_jobs.daemons.runtime import DaemonContext
from hivemind_jobs.errors import ConfigurationError, HiveMindError
from hivemind_jobs.storage.protocol import JobPurge, LeaseAcquire, LogPurge

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment
    from hivemind_jobs.storage.protocol import Transaction

__all__ = [
    "DEFAULT_LEASE_TTL",
    "FIRST_PASS_DELAY",
    "Maintenance",
    "MaintenanceReport",
    "lease_name",
    "maintenance_daemon",
    "run_maintenance",
]

#: How long a pass's lease lasts without renewal. A pass renews it after a batch once a third of
#: it has gone by, so it only has to outlast a few batches (a batch of 1,000 jobs takes well under
#: a second on every backend; see bench/cleanup.py), and a crashed holder blocks the cleanup of
#: its environment for at most this long.
DEFAULT_LEASE_TTL = timedelta(seconds=30)
#: The daemon's first pass comes after up to this long (jittered, and never later than the
#: interval), so colonies started together neither clean up at once nor wait a whole interval.
FIRST_PASS_DELAY = 5.0

# What a pass removes, in this order (a job's logs go with the job, so jobs come first).
JOBS = "jobs"
JOB_LOGS = "job_logs"
DAEMON_LOGS = "daemon_logs"
OCCURRENCE_KEYS = "occurrence_keys"
KINDS = (JOBS, JOB_LOGS, DAEMON_LOGS, OCCURRENCE_KEYS)
_LOG_TABLES = {JOB_LOGS: "job_log", DAEMON_LOGS: "daemon_log", OCCURRENCE_KEYS: "recurring_occurrence"}


def lease_name(index: int) -> str:
    """The name of the ``index``-th maintenance lease of an environment."""
    return f"maintenance.{index}"


@dataclass
class MaintenanceReport:
    """What one pass did.

    ``lease`` is the lease it held (None: all ``concurrency`` leases were held by others, so it
    did nothing). ``jobs`` ... ``occurrence_keys`` count the rows removed (a job counts once, with
    its states, properties, data, logs, actions, continuations and queue entry); ``batches`` the
    transactions per kind (a kind whose retention is off has none). ``finished`` is True when every
    kind ran until a short batch; False when the colony stopped or the lease was lost first.
    """

    lease: str | None = None
    jobs: int = 0
    job_logs: int = 0
    daemon_logs: int = 0
    occurrence_keys: int = 0
    batches: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    lease_lost: bool = False
    seconds: float = 0.0

    @property
    def removed(self) -> int:
        """Rows removed, all kinds together."""
        return self.jobs + self.job_logs + self.daemon_logs + self.occurrence_keys

    @property
    def total_batches(self) -> int:
        return sum(self.batches.values())

    def summary(self) -> str:
        counts = ", ".join(f"{getattr(self, kind):,} {kind.replace('_', ' ')}" for kind in KINDS)
        ending = "" if self.finished else (" (lease lost)" if self.lease_lost else " (stopped early)")
        return f"removed {counts} in {self.total_batches} batches, {self.seconds:.1f} s{ending}"


class _Lease:
    """A held maintenance lease; renewed in the transaction of a batch once a third of its TTL passed."""

    def __init__(self, name: str, holder: str, ttl: timedelta) -> None:
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self._renew_after = time.monotonic() + ttl.total_seconds() / 3

    @property
    def renewal_due(self) -> bool:
        return time.monotonic() >= self._renew_after

    async def renew(self, tx: Transaction) -> bool:
        """Extend the lease; False when another holder took it over (ours had expired)."""
        started = time.monotonic()
        renewed = await tx.lease_acquire(LeaseAcquire(self.name, self.holder, self.ttl))
        self._renew_after = started + self.ttl.total_seconds() / 3
        return renewed


async def _take_lease(environment: Environment, holder: str, concurrency: int, ttl: timedelta) -> _Lease | None:
    """The first free lease of ``concurrency`` (one transaction), or None when all are held."""
    async with environment.jobs.unit_of_work() as scope:
        for index in range(concurrency):
            name = lease_name(index)
            if await scope.tx.lease_acquire(LeaseAcquire(name, holder, ttl)):
                return _Lease(name, holder, ttl)
    return None


async def _release_lease(environment: Environment, lease: _Lease) -> None:
    try:
        async with environment.jobs.unit_of_work() as scope:
            scope.tx.commit_after_next()
            await scope.tx.lease_acquire(LeaseAcquire(lease.name, lease.holder, lease.ttl, release=True))
    except HiveMindError:
        pass  # the lease expires on its own after its TTL


async def run_maintenance(
    environment: Environment,
    holder: str,
    *,
    batch: int = 1000,
    concurrency: int = 1,
    lease_ttl: timedelta = DEFAULT_LEASE_TTL,
    pause: float = 0.0,
    stopping: asyncio.Event | None = None,
) -> MaintenanceReport:
    """One cleanup pass over ``environment`` by ``holder`` (a name unique to the caller, such as
    ``"hm.maintenance:<colony id>"``), within its :class:`~hivemind_jobs.Options` retentions:

    - jobs whose current state is one of ``retention_states`` and was elected more than
      ``retention`` ago, unless they are locked (skipped when ``retention`` is None);
    - job log records older than ``job_log_retention`` (skipped when it is None: logs live with
      their job), daemon log records older than ``daemon_log_retention``, and the keys of
      recurring occurrences enqueued more than ``occurrence_key_retention`` ago.

    The pass first takes one of ``concurrency`` leases (``lease_name(0..concurrency-1)``, each
    lasting ``lease_ttl`` on the database clock; it returns at once, having removed nothing, when
    all are held), then deletes up to ``batch`` rows per transaction, kind after kind, until a
    batch comes back short. Between batches it yields to the event loop (sleeping ``pause``
    seconds) and returns early once ``stopping`` is set or its lease was taken over. The lease is
    released at the end. Storage errors (:class:`~hivemind_jobs.HiveMindError`) propagate; what
    earlier batches removed stays removed.
    """
    if not 1 <= batch <= 100_000:
        raise ConfigurationError(f"batch must be in 1..100000, got {batch}")
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
    if lease_ttl <= timedelta(0):
        raise ConfigurationError(f"lease_ttl must be a positive timedelta, got {lease_ttl!r}")
    if pause < 0:
        raise ConfigurationError(f"pause must be >= 0, got {pause}")
    started = time.monotonic()
    report = MaintenanceReport()
    if stopping is not None and stopping.is_set():
        return report
    lease = await _take_lease(environment, holder, concurrency, lease_ttl)
    if lease is None:
        report.seconds = time.monotonic() - started
        return report
    report.lease = lease.name
    try:
        report.finished = await _purge_all(environment, lease, report, batch, pause, stopping)
    finally:
        report.seconds = time.monotonic() - started
        if not report.lease_lost:
            await _release_lease(environment, lease)
    return report


async def _purge_all(
    environment: Environment,
    lease: _Lease,
    report: MaintenanceReport,
    batch: int,
    pause: float,
    stopping: asyncio.Event | None,
) -> bool:
    options = environment.options
    work: list[tuple[str, JobPurge | LogPurge]] = []
    if options.retention is not None:
        work.append((JOBS, JobPurge(tuple(options.retention_states), options.retention, batch)))
    if options.job_log_retention is not None:
        work.append((JOB_LOGS, LogPurge(_LOG_TABLES[JOB_LOGS], options.job_log_retention, batch)))
    work.append((DAEMON_LOGS, LogPurge(_LOG_TABLES[DAEMON_LOGS], options.daemon_log_retention, batch)))
    work.append((OCCURRENCE_KEYS, LogPurge(_LOG_TABLES[OCCURRENCE_KEYS], options.occurrence_key_retention, batch)))
    for kind, purge in work:
        while True:
            if stopping is not None and stopping.is_set():
                return False
            removed = await _purge_batch(environment, lease, report, purge)
            report.batches[kind] = report.batches.get(kind, 0) + 1
            setattr(report, kind, getattr(report, kind) + removed)
            if report.lease_lost:
                return False
            # Let the colony's fetchers, drones and completer in this process run between batches.
            await asyncio.sleep(pause)
            if removed < batch:
                break
    return True


async def _purge_batch(
    environment: Environment, lease: _Lease, report: MaintenanceReport, purge: JobPurge | LogPurge
) -> int:
    """One batch in one transaction; the purge comes first (a server retries a transaction whose
    first statement hit a deadlock), then the lease renewal when it is due."""
    renew = lease.renewal_due
    async with environment.jobs.unit_of_work() as scope:
        tx = scope.tx
        if not renew:
            tx.commit_after_next()
        removed = await (tx.job_purge(purge) if isinstance(purge, JobPurge) else tx.log_purge(purge))
        if renew:
            tx.commit_after_next()
            report.lease_lost = not await lease.renew(tx)
    return removed


class Maintenance(PeriodicDaemon):
    """A cleanup pass every ``ColonyOptions.maintenance_interval`` (the first one after a short
    jittered delay) with the colony's ``maintenance_batch`` and ``maintenance_concurrency``."""

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.options = ctx.colony.options
        self.interval = self.options.maintenance_interval.total_seconds()
        self.holder = f"{ctx.name}:{ctx.colony.id}"
        self._delay = min(self.interval, FIRST_PASS_DELAY) * random.uniform(0.2, 1.0)

    def next_delay(self) -> float:
        return self._delay

    async def run_once(self) -> MaintenanceReport | None:
        """One pass; returns its report (None: it could not run)."""
        ctx = self.ctx
        options = self.options
        self._delay = self.interval * random.uniform(0.9, 1.0)
        try:
            report = await run_maintenance(
                ctx.colony.environment,
                self.holder,
                batch=options.maintenance_batch,
                concurrency=options.maintenance_concurrency,
                stopping=ctx.stopping,
            )
        except HiveMindError as error:
            ctx.log.warning("maintenance could not run (next try in %.0f s): %s", self._delay, error)
            return None
        if report.removed:
            ctx.log.info("maintenance: %s", report.summary())
        return report


async def maintenance_daemon(ctx: DaemonContext) -> None:
    """Run :class:`Maintenance` until the colony stops."""
    await Maintenance(ctx).run()
