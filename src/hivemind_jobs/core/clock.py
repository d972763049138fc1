"""Time sources. The domain never calls ``datetime.now()`` directly, so tests can freeze time.

Database-side comparisons (leases, due times, lock timeouts) use the database clock inside SQL;
this clock only stamps values the client itself decides (state elected times, computed delays).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SystemClock", "from_microseconds", "to_microseconds", "utc"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (thread-safe)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = utc(start) if start is not None else datetime(2030, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = utc(moment)


def utc(moment: datetime) -> datetime:
    """Convert an aware datetime to UTC; a naive one is refused (its meaning is ambiguous)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"naive datetime {moment.isoformat()} has no time zone: pass an aware datetime, "
            "e.g. datetime.now(timezone.utc)"
        )
    return moment.astimezone(UTC)


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the Unix epoch (exact integer arithmetic)."""
    delta = (moment if moment.tzinfo is UTC else utc(moment)) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_microseconds(value: int) -> datetime:
    return _EPOCH + timedelta(0, 0, value)
