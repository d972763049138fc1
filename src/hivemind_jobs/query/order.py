"""The order of search results, pages, keyset cursors and the limits of a search."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hivemind_jobs.core.clock import from_microseconds, to_microseconds
from hivemind_jobs.core.names import validate_property_name
from hivemind_jobs.core.text import text_problem
from hivemind_jobs.errors import ConfigurationError, QueryError

__all__ = ["MAX_LOCK", "MAX_PAGE", "ORDER_KEYS", "Order", "decode_cursor", "encode_cursor", "parse_order"]

#: the most jobs one search returns
MAX_PAGE = 10_000
#: the most jobs one search-and-lock (or one bulk batch) locks
MAX_LOCK = 1_000
#: the job columns a search can be ordered by (with aliases)
ORDER_KEYS = {
    "id": "id",
    "created": "created_at",
    "created_at": "created_at",
    "modified": "modified_at",
    "modified_at": "modified_at",
    "queue": "queue",
    "priority": "priority",
}
_PROPERTY_PREFIX = "property:"


@dataclass(frozen=True, slots=True)
class Order:
    """Sort by ``key`` (a job column, or ``property`` for the property ``property_name``), then
    by id in the same direction. Jobs without the property come last either way."""

    key: str = "id"
    descending: bool = False
    property_name: str | None = None

    @property
    def keyset(self) -> bool:
        """Whether pages can continue from a cursor (orders by job columns)."""
        return self.property_name is None

    def __str__(self) -> str:
        name = f"{_PROPERTY_PREFIX}{self.property_name}" if self.property_name else self.key
        return f"-{name}" if self.descending else name


def parse_order(order_by: str | Order | None) -> Order:
    """``"created"``, ``"-priority"``, ``"property:tenant"`` ... as an :class:`Order`."""
    if order_by is None:
        return Order()
    if isinstance(order_by, Order):
        return order_by
    if not isinstance(order_by, str):
        raise QueryError(f"order_by takes a string such as '-created', got {order_by!r}")
    descending = order_by.startswith("-")
    name = order_by[1:] if descending else order_by
    if name.startswith(_PROPERTY_PREFIX):
        property_name = name[len(_PROPERTY_PREFIX) :]
        try:
            validate_property_name(property_name)
        except ConfigurationError as error:
            raise QueryError(f"order_by {order_by!r}: {error}") from None
        return Order("property", descending, property_name)
    key = ORDER_KEYS.get(name)
    if key is None:
        raise QueryError(
            f"cannot order by {order_by!r}; use one of {', '.join(sorted(set(ORDER_KEYS)))} or property:<name>, "
            "with a leading '-' for descending"
        )
    return Order(key, descending)


def encode_cursor(order: Order, value: Any, job_id: int) -> str:
    """An opaque cursor after the job ``job_id`` whose sort value is ``value``."""
    if isinstance(value, datetime):
        value = to_microseconds(value)
    raw = json.dumps([str(order), value, job_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_MAX_CURSOR = 8000


def decode_cursor(order: Order, cursor: str) -> tuple[Any, int]:
    """The ``(sort value, id)`` a cursor continues after; it must come from the same order."""
    if not isinstance(cursor, str) or len(cursor) > _MAX_CURSOR:
        raise QueryError("after= takes a cursor string from a previous page's next_cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        order_text, value, job_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise QueryError("after= is not a cursor from a previous page's next_cursor") from None
    if order_text != str(order):
        raise QueryError(f"the cursor belongs to order_by {order_text!r}, not {str(order)!r}")
    if not _is_int64(job_id):
        raise QueryError("after= is not a cursor from a previous page's next_cursor")
    if order.key in ("created_at", "modified_at"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise QueryError("after= is not a cursor from a previous page's next_cursor")
        try:
            return from_microseconds(value), job_id
        except (OverflowError, ValueError):
            raise QueryError("after= is not a cursor from a previous page's next_cursor") from None
    if order.key == "queue":
        valid = isinstance(value, str) and text_problem(value, _MAX_CURSOR) is None
    else:
        valid = _is_int64(value) and (order.key != "id" or value == job_id)
    if not valid:
        raise QueryError("after= is not a cursor from a previous page's next_cursor")
    return value, job_id


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
