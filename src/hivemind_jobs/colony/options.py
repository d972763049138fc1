"""Options of a colony (timings, prefetch, thread pool) and of its daemons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hivemind_jobs.daemons.runtime import RestartPolicy
from hivemind_jobs.errors import ConfigurationError

__all__ = ["ColonyOptions", "RestartPolicy"]

_DEFAULT_SHUTDOWN_TIMEOUT = timedelta(seconds=10)


def _positive(name: str, value: timedelta) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigurationError(f"ColonyOptions.{name} must be a positive timedelta, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ColonyOptions:
    """How a colony fetches, watches and stops. Every timing can go down to test scale.

    - ``poll_interval`` (± ``poll_jitter`` as a fraction): how often idle swarms look for due jobs
      when nothing in this process woke them (an enqueue in the same process wakes them at once).
    - ``change_check_interval``: how often idle swarms look at the storage's change marker to start
      jobs enqueued by other processes at once: a cheap local check on SQLite; on MySQL/MariaDB a
      query (the highest job id, on a connection of its own), at most every 10 ms and only while a
      swarm is idle, so at most 100 small queries per second per colony (new jobs start at once;
      retries, requeues and continuations enqueued elsewhere wait for the poll). PostgreSQL is
      notified instead. None turns it off, the PostgreSQL listener too (then only
      ``poll_interval`` applies).
    - ``prefetch``: jobs claimed per swarm beyond its free drones (0: never more than free drones).
    - ``heartbeat_interval``: how often running jobs' locks are confirmed (None: a quarter of the
      environment's lock timeout). ``lock_safety``: the fraction of the lock timeout kept as margin:
      a drone that could not confirm its lock for ``lock_timeout * (1 - lock_safety)`` cancels its job
      and writes nothing more (fail closed).
      Locks are renewed by a thread with a database connection of its own, so a job that blocks the
      event loop does not stop them, and every renewal has a deadline within that margin.
    - ``loop_stall_warning``: a thread pings the event loop; when it does not answer for this long,
      one WARNING per stall names the async job(s) running on it (None: no check).
    - ``watch_interval``: how often running jobs look for cancel requests (and flush their logs).
    - ``lock_monitor_interval``: how often expired job locks are rescued (None: half the lock timeout).
      ``max_rescues``: how often the lock monitor rescues a job whose lock expired (its worker died
      or hung) and enqueues it again, due when it was first due; so such a job runs at most
      ``max_rescues + 1`` times, and when the lock of that last run expires too it fails as poison
      (3: four runs; 0: one run). Retries after exceptions are counted apart.
    - ``graceful_stop``: how long running jobs may finish after a stop request before they are
      cancelled and put back to Enqueued. ``shutdown_timeout``: how much longer the rest of the stop
      may take, all stages together (cancelled jobs ending, outcomes written, daemons stopped, the
      colony state written, and the storage closed by ``hivemind worker``), so a stop ends within
      ``graceful_stop + shutdown_timeout`` even when the database does not answer. A sync job whose
      thread is still running then keeps its lock until the thread returns or the process exits
      (never back to Enqueued while it may still run). ``shutdown_write_timeout`` is a deprecated
      name of ``shutdown_timeout`` (used when ``shutdown_timeout`` is left at its default).
    - ``timeout_grace``: how long a job that reached its timeout (``Options.timeout``, a swarm's
      or its own) may take to stop after it was cancelled. A sync job in a thread cannot be
      stopped from outside: when it has not returned by then, its drone is written off (the swarm
      gets a fresh one, the thread pool one more thread) while the job keeps its lock, and it is
      recorded as failed with ``TimeoutError`` once its thread returns, so that no second run of
      it can overlap this one.
    - ``process_start_method``: how the child processes of swarms with ``execution="process"``
      are started: ``"spawn"`` (default) or ``"forkserver"``.
    - ``state_sync_interval``: how often the colony's state is written; colonies without a heartbeat
      for ``stale_colony_after`` are removed by ``colony_cleanup_interval``.
    - ``sync_threads``: threads for synchronous jobs (None: one per drone).
    - ``completion_batch``: most finished jobs written in one transaction.
    - ``ack_and_fetch``: whether the completer claims new jobs for the drones a batch freed in the
      transaction that writes the batch's outcomes (one transaction instead of two). When False,
      a swarm's fetcher claims for them at once, in a transaction of its own, while the outcomes
      are being written: the database works on both at the same time and the drones run the new
      jobs meanwhile. None (default): True where the storage has one writer at a time (SQLite,
      where two transactions cannot overlap), False where it has several (PostgreSQL, MySQL/MariaDB).
    - ``claim_ahead``: where the fetchers claim for freed drones themselves (no ack and fetch), a
      swarm whose runs took less than this of late (a moving average) also claims one job ahead
      for each busy drone whose run started less than this ago: the claim is at the database while
      the current runs end, and each such job starts (its Executing state names that drone) as
      soon as the drone's run ends, so it waits about as long as one short run (at most two are
      held per drone; jobs with concurrency or rate limits are left for free drones). None: never.
    - ``scheduler_interval``: how often the colony enqueues due recurring-job occurrences and
      notices finished ones (every colony runs the scheduler; the database keeps it exactly once).
    - ``maintenance_interval``: how often retention cleanup runs (completed jobs, job logs, daemon
      logs, old occurrence keys), ``maintenance_batch`` rows per transaction, by at most
      ``maintenance_concurrency`` colonies of the environment at a time (leases in the database).
    """

    poll_interval: timedelta = timedelta(seconds=1)
    poll_jitter: float = 0.2
    change_check_interval: timedelta | None = timedelta(milliseconds=2)
    prefetch: int = 0
    heartbeat_interval: timedelta | None = None
    lock_safety: float = 0.25
    loop_stall_warning: timedelta | None = timedelta(seconds=1)
    watch_interval: timedelta = timedelta(milliseconds=500)
    lock_monitor_interval: timedelta | None = None
    max_rescues: int = 3
    graceful_stop: timedelta = timedelta(seconds=10)
    shutdown_timeout: timedelta = _DEFAULT_SHUTDOWN_TIMEOUT
    shutdown_write_timeout: timedelta | None = None
    timeout_grace: timedelta = timedelta(seconds=10)
    process_start_method: str = "spawn"
    state_sync_interval: timedelta = timedelta(seconds=2)
    stale_colony_after: timedelta = timedelta(minutes=5)
    colony_cleanup_interval: timedelta = timedelta(minutes=1)
    sync_threads: int | None = None
    completion_batch: int = 200
    ack_and_fetch: bool | None = None
    claim_ahead: timedelta | None = timedelta(milliseconds=20)
    scheduler_interval: timedelta = timedelta(seconds=1)
    maintenance_interval: timedelta = timedelta(minutes=1)
    maintenance_batch: int = 1000
    maintenance_concurrency: int = 1

    def __post_init__(self) -> None:
        for name in (
            "poll_interval",
            "watch_interval",
            "graceful_stop",
            "shutdown_timeout",
            "timeout_grace",
            "state_sync_interval",
            "stale_colony_after",
            "colony_cleanup_interval",
            "scheduler_interval",
            "maintenance_interval",
        ):
            _positive(name, getattr(self, name))
        for name in (
            "heartbeat_interval",
            "lock_monitor_interval",
            "change_check_interval",
            "loop_stall_warning",
            "shutdown_write_timeout",
            "claim_ahead",
        ):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        if not 0 <= self.poll_jitter < 1:
            raise ConfigurationError(f"ColonyOptions.poll_jitter must be in [0, 1), got {self.poll_jitter}")
        if not 0 < self.lock_safety < 1:
            raise ConfigurationError(f"ColonyOptions.lock_safety must be in (0, 1), got {self.lock_safety}")
        if self.prefetch < 0:
            raise ConfigurationError(f"ColonyOptions.prefetch must be >= 0, got {self.prefetch}")
        if self.max_rescues < 0:
            raise ConfigurationError(f"ColonyOptions.max_rescues must be >= 0, got {self.max_rescues}")
        if self.sync_threads is not None and self.sync_threads < 1:
            raise ConfigurationError(f"ColonyOptions.sync_threads must be >= 1, got {self.sync_threads}")
        if self.process_start_method not in ("spawn", "forkserver"):
            raise ConfigurationError(
                f"ColonyOptions.process_start_method must be 'spawn' or 'forkserver', got {self.process_start_method!r}"
            )
        if self.ack_and_fetch is not None and not isinstance(self.ack_and_fetch, bool):
            raise ConfigurationError(
                f"ColonyOptions.ack_and_fetch must be True, False or None, got {self.ack_and_fetch!r}"
            )
        if self.completion_batch < 1:
            raise ConfigurationError("ColonyOptions.completion_batch must be >= 1")
        if not 1 <= self.maintenance_batch <= 100_000:
            raise ConfigurationError(
                f"ColonyOptions.maintenance_batch must be in 1..100000, got {self.maintenance_batch}"
            )
        if self.maintenance_concurrency < 1:
            raise ConfigurationError(
                f"ColonyOptions.maintenance_concurrency must be >= 1, got {self.maintenance_concurrency}"
            )

    @property
    def stop_budget(self) -> timedelta:
        """How long a stop may take after ``graceful_stop``: ``shutdown_timeout``, or the deprecated
        ``shutdown_write_timeout`` when only that one was set."""
        if self.shutdown_write_timeout is not None and self.shutdown_timeout == _DEFAULT_SHUTDOWN_TIMEOUT:
            return self.shutdown_write_timeout
        return self.shutdown_timeout

    def heartbeat_every(self, lock_timeout: timedelta) -> float:
        return (self.heartbeat_interval or lock_timeout / 4).total_seconds()

    def monitor_every(self, lock_timeout: timedelta) -> float:
        return (self.lock_monitor_interval or lock_timeout / 2).total_seconds()
