"""Validation of every name that can end up in storage or in an identifier.

All patterns are anchored full matches (an unanchored pattern let ``Main; DROP ...`` through
upstream). Names are checked at the edge, before anything is written.
"""

from __future__ import annotations

import re
from typing import Final

from hivemind_jobs.errors import InvalidNameError

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "DEFAULT_QUEUE",
    "TABLE_PREFIX_MAX",
    "validate_data_name",
    "validate_environment_name",
    "validate_property_name",
    "validate_queue_name",
    "validate_requester",
    "validate_state_name",
    "validate_swarm_name",
    "validate_table_prefix",
]

DEFAULT_QUEUE: Final = "global"
DEFAULT_ENVIRONMENT: Final = "main"

_QUEUE = re.compile(r"[A-Za-z0-9._-]{1,255}")
_PROPERTY = _QUEUE
_DATA = _QUEUE
_ENVIRONMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_STATE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,99}")
#: SQLite has no identifier limit; the server backends allow less (``hivemind_jobs.storage.sql.max_table_prefix``:
#: their identifier limit less the longest name their SQL writes after the prefix)
TABLE_PREFIX_MAX: Final = 80
_TABLE_PREFIX = re.compile(rf"[A-Za-z0-9_-]{{0,{TABLE_PREFIX_MAX}}}")
_SWARM = re.compile(r"[A-Za-z0-9._-]{1,64}")
_REQUESTER_MAX = 255


def _check(kind: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(f"{kind} must be a string, got {type(value).__name__} {value!r}")
    if pattern.fullmatch(value) is None:
        raise InvalidNameError(f"invalid {kind} {value!r}: {rule}")
    return value


def validate_queue_name(name: object) -> str:
    return _check("queue name", name, _QUEUE, "use 1-255 characters from A-Z a-z 0-9 . _ -")


def validate_property_name(name: object) -> str:
    return _check("property name", name, _PROPERTY, "use 1-255 characters from A-Z a-z 0-9 . _ -")


def validate_data_name(name: object) -> str:
    return _check("job data name", name, _DATA, "use 1-255 characters from A-Z a-z 0-9 . _ -")


def validate_environment_name(name: object) -> str:
    return _check("environment name", name, _ENVIRONMENT, "use 1-64 characters from A-Z a-z 0-9 _ -")


def validate_state_name(name: object) -> str:
    return _check("state name", name, _STATE, "start with a letter, then up to 99 characters from A-Z a-z 0-9 . _ -")


def validate_swarm_name(name: object) -> str:
    """Swarm, colony and daemon names."""
    return _check("name", name, _SWARM, "use 1-64 characters from A-Z a-z 0-9 . _ -")


def validate_table_prefix(prefix: object) -> str:
    if isinstance(prefix, str) and len(prefix) > TABLE_PREFIX_MAX and re.fullmatch(r"[A-Za-z0-9_-]*", prefix):
        raise InvalidNameError(
            f"table prefix {prefix!r} is too long ({len(prefix)} characters): use at most {TABLE_PREFIX_MAX} "
            "characters from A-Z a-z 0-9 _ -"
        )
    return _check(
        "table prefix", prefix, _TABLE_PREFIX, f"use up to {TABLE_PREFIX_MAX} characters from A-Z a-z 0-9 _ -"
    )


def validate_requester(requester: object) -> str:
    if not isinstance(requester, str) or not requester or len(requester) > _REQUESTER_MAX:
        raise InvalidNameError(
            f"lock requester must be a non-empty string of at most {_REQUESTER_MAX} characters, got {requester!r}"
        )
    return requester
