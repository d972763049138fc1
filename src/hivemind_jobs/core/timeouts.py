"""Job timeouts: how long one run of a job may take, and which setting decides it (pure, no I/O).

A job's own timeout (``jobs.options(timeout=...)``, stored in its ``hm.timeout`` property as
seconds) wins over its swarm's (the nearest swarm of the tree that sets one), which wins over the
environment's (``Options(timeout=...)``). None anywhere means "no limit at that level".
"""

from __future__ import annotations

from datetime import timedelta

from hivemind_jobs.errors import ConfigurationError

__all__ = ["TIMEOUT_PROPERTY", "effective_timeout", "stored_timeout", "timeout_seconds", "validate_timeout"]

#: the job property that holds a job's own timeout, in seconds (absent: the job has none)
TIMEOUT_PROPERTY = "hm.timeout"

#: the longest timeout accepted (a year): beyond that a timer is no protection, and floats lose precision
_MAX_TIMEOUT = timedelta(days=366)


def validate_timeout(value: object, what: str) -> timedelta | None:
    """``value`` when it can be a timeout (None or a positive timedelta up to a year); else a
    :class:`ConfigurationError` naming ``what`` (e.g. ``"Options.timeout"``)."""
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise ConfigurationError(f"{what} must be a timedelta such as timedelta(minutes=5) or None, got {value!r}")
    if value <= timedelta(0):
        raise ConfigurationError(f"{what} must be positive, got {value}; use None for no timeout")
    if value > _MAX_TIMEOUT:
        raise ConfigurationError(f"{what} must be at most {_MAX_TIMEOUT.days} days, got {value}; use None for none")
    return value


def timeout_seconds(value: timedelta) -> float:
    """The stored form of a job's own timeout (its ``hm.timeout`` property)."""
    return value.total_seconds()


def stored_timeout(stored: object) -> float | None:
    """A job's own timeout in seconds, read from its ``hm.timeout`` property (None when it has
    none, or when the stored value is not a positive number)."""
    if isinstance(stored, bool) or not isinstance(stored, int | float):
        return None
    seconds = float(stored)
    return seconds if 0 < seconds < float("inf") else None


def effective_timeout(
    job_seconds: float | None, swarm: timedelta | None, environment: timedelta | None
) -> float | None:
    """The timeout one run gets, in seconds: the job's, else its swarm's, else the environment's."""
    if job_seconds is not None:
        return job_seconds
    if swarm is not None:
        return swarm.total_seconds()
    if environment is not None:
        return environment.total_seconds()
    return None
