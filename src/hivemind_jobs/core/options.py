"""Per-environment options."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from hivemind_jobs.core.limits import Limits
from hivemind_jobs.core.names import validate_state_name
from hivemind_jobs.core.retry import RetryPolicy
from hivemind_jobs.core.throttle import Limit, RateLimit, queue_limit_entries
from hivemind_jobs.core.timeouts import validate_timeout
from hivemind_jobs.errors import ConfigurationError

__all__ = ["Options"]


@dataclass(frozen=True, kw_only=True)
class Options:
    """Options of one environment. Every timing can go down to seconds (tests use 1-3 s locks).

    - ``retention``: how long completed jobs are kept (None keeps them forever);
      ``retention_states``: which current states count as completed.
    - ``lock_timeout``: a job lock without a heartbeat for this long is expired (the lock monitor
      rescues it); saves with an expired lock fail. Keep it well above the longest write wait of
      your database: several busy worker processes on one SQLite file can wait seconds for its
      write lock, and a lock that expires meanwhile makes a finished job run again.
    - ``retry``: the default retry policy of background jobs.
    - ``timeout``: how long one run of a job may take by default (None: no limit). A swarm's
      ``timeout`` and a job's own (``jobs.options(timeout=...)``) win over it; a run that reaches
      its timeout fails with ``TimeoutError`` and is retried by the retry policy.
    - ``max_election_hops``: how many times election handlers may replace a state in one change.
    - ``max_continuation_depth``: how deep one transition may cascade through continuations.
    - ``job_log_level``: the lowest level of job log records that is persisted.
    - ``job_log_retention``: job log records older than this are removed (None: they live as
      long as their job); ``daemon_log_retention`` the same for colonies' daemon logs.
    - ``catch_up_window``: how late a recurring occurrence may still be enqueued; with
      ``clock_skew_allowance`` it bounds ``occurrence_key_retention``, how long the key of an
      enqueued occurrence (the exactly-once guard) is kept.
    - ``clock_skew_warning``: a WARNING (logger ``hivemind_jobs.clock``) is logged when this
      process's clock differs from the database's by more than this (checked when the environment
      opens and at each colony state sync; None: never checked). Due times never depend on it.
    - ``limits``: how large arguments, job data, results, log messages and exception text may be
      (:class:`~hivemind_jobs.core.limits.Limits`; 1 MiB for stored values by default).
    - ``queue_limits``: concurrency and rate limits of queues, by queue name: a
      :class:`~hivemind_jobs.core.throttle.Limit`, a :class:`~hivemind_jobs.core.throttle.RateLimit`
      or a tuple of one of each (their key defaults to the queue). Jobs created in such a queue
      without limits of their own get these; the creating process's options decide.
    """

    retention: timedelta | None = timedelta(days=30)
    retention_states: tuple[str, ...] = ("Succeeded", "Deleted")
    lock_timeout: timedelta = timedelta(minutes=1)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_election_hops: int = 10
    max_continuation_depth: int = 50
    job_log_level: int = logging.INFO
    wait_for_lock_poll: timedelta = timedelta(milliseconds=250)
    job_log_retention: timedelta | None = None
    daemon_log_retention: timedelta = timedelta(days=7)
    catch_up_window: timedelta = timedelta(days=1)
    clock_skew_allowance: timedelta = timedelta(minutes=5)
    occurrence_key_retention: timedelta = timedelta(days=7)
    clock_skew_warning: timedelta | None = timedelta(seconds=10)
    limits: Limits = field(default_factory=Limits)
    timeout: timedelta | None = None
    queue_limits: Mapping[str, Limit | RateLimit | tuple[Limit | RateLimit, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.queue_limits, Mapping):
            raise ConfigurationError(
                f"Options.queue_limits must be a mapping of queue names, got {self.queue_limits!r}"
            )
        for queue, entry in self.queue_limits.items():
            queue_limit_entries(entry, queue)
        if self.retention is not None and self.retention < timedelta(0):
            raise ConfigurationError(f"Options.retention must be >= 0 or None, got {self.retention}")
        for name in self.retention_states:
            validate_state_name(name)
        if self.lock_timeout < timedelta(seconds=1):
            raise ConfigurationError(f"Options.lock_timeout must be at least 1 second, got {self.lock_timeout}")
        if self.max_election_hops < 1:
            raise ConfigurationError("Options.max_election_hops must be at least 1")
        if self.max_continuation_depth < 1:
            raise ConfigurationError("Options.max_continuation_depth must be at least 1")
        if self.wait_for_lock_poll <= timedelta(0):
            raise ConfigurationError("Options.wait_for_lock_poll must be positive")
        if self.job_log_retention is not None and self.job_log_retention <= timedelta(0):
            raise ConfigurationError(
                f"Options.job_log_retention must be positive or None, got {self.job_log_retention}"
            )
        for name in ("daemon_log_retention", "catch_up_window", "occurrence_key_retention"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigurationError(f"Options.{name} must be positive, got {getattr(self, name)}")
        if self.clock_skew_warning is not None and (
            not isinstance(self.clock_skew_warning, timedelta) or self.clock_skew_warning <= timedelta(0)
        ):
            raise ConfigurationError(
                f"Options.clock_skew_warning must be a positive timedelta or None, got {self.clock_skew_warning!r}"
            )
        if self.clock_skew_allowance < timedelta(0):
            raise ConfigurationError(f"Options.clock_skew_allowance must be >= 0, got {self.clock_skew_allowance}")
        if self.occurrence_key_retention < self.catch_up_window + self.clock_skew_allowance:
            raise ConfigurationError(
                f"Options.occurrence_key_retention ({self.occurrence_key_retention}) must be at least "
                f"catch_up_window + clock_skew_allowance ({self.catch_up_window + self.clock_skew_allowance}): "
                "a key pruned earlier could let an occurrence be enqueued twice"
            )
        if not isinstance(self.limits, Limits):
            raise ConfigurationError(
                f"Options.limits must be hivemind_jobs.core.limits.Limits(...), got {self.limits!r}"
            )
        validate_timeout(self.timeout, "Options.timeout")
        if not isinstance(self.job_log_level, int) or isinstance(self.job_log_level, bool):
            raise ConfigurationError("Options.job_log_level must be a logging level (int)")
