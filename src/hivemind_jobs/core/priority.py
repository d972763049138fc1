"""Job priorities inside a queue: lower runs first."""

from __future__ import annotations

from enum import IntEnum

from hivemind_jobs.errors import ConfigurationError

__all__ = ["Priority", "coerce_priority"]


class Priority(IntEnum):
    """Five priorities; within a queue, jobs with a lower value are fetched first."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3
    NONE = 4


def coerce_priority(value: object) -> Priority:
    """Accept a :class:`Priority`, its int value or its name; anything else is a clear error."""
    if isinstance(value, Priority):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return Priority(value)
        except ValueError:
            pass
    elif isinstance(value, str) and value.upper() in Priority.__members__:
        return Priority[value.upper()]
    raise ConfigurationError(
        f"invalid priority {value!r}: use hivemind_jobs.Priority (CRITICAL=0, HIGH=1, NORMAL=2, LOW=3, "
        "NONE=4), its int value or its name"
    )
