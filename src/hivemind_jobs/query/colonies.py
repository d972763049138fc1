"""Conditions over colonies and their daemons, and their evaluation.

Build them from :data:`colony` and :data:`daemon` with the same operators as job queries::

    from hivemind_jobs.query import colony, daemon, where

    where(colony.status == "running", colony.prop("region") == "eu")
    colony.daemon(daemon.name == "lock-monitor", daemon.status == "faulted")

An environment has a handful of colonies (one row each, rewritten every few seconds with its
whole state), so colony searches read the colony rows and test the conditions in the process;
the semantics are those of job queries (typed property comparisons, code-point text, ``*`` like).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from hivemind_jobs.core.names import validate_property_name
from hivemind_jobs.errors import ConfigurationError, QueryError
from hivemind_jobs.query.conditions import (
    All,
    AnyDaemon,
    AnyOf,
    Compare,
    Condition,
    Not,
    Op,
    PropertyTarget,
    Target,
    TargetKind,
    ValueKind,
    _datetime,
    _Field,
    _text,
    _TextField,
    like_parts,
    target_kinds,
    where,
)

__all__ = [
    "COLONY_ORDER_KEYS",
    "check_colony_condition",
    "colony",
    "colony_matches",
    "daemon",
    "parse_colony_order",
]

#: what colony searches can be ordered by
COLONY_ORDER_KEYS = ("id", "name", "host", "status", "started_at", "heartbeat")
_COLONY_KINDS = {TargetKind.COLONY, TargetKind.COLONY_PROPERTY, TargetKind.DAEMON}


def _status(target: Target, value: object) -> str:
    """A status given as text or as an enum member (``DaemonStatus.FAULTED``)."""
    raw = getattr(value, "value", value)
    return _text(target, raw)


class _DaemonTargets:
    """A daemon of a colony, inside ``colony.daemon(...)``: ``daemon.name``, ``daemon.status``."""

    __slots__ = ()

    @property
    def name(self) -> _TextField:
        return _TextField(Target(TargetKind.DAEMON, "name"), ValueKind.TEXT, _text)

    @property
    def status(self) -> _TextField:
        return _TextField(Target(TargetKind.DAEMON, "status"), ValueKind.TEXT, _status)

    def __repr__(self) -> str:
        return "daemon"


class RowTargets:
    """Targets of a kind of row evaluated in the process (colonies, recurring jobs): text and time
    columns, and typed properties."""

    __slots__ = ()
    _kind: TargetKind
    _property_kind: TargetKind

    def _text(self, name: str) -> _TextField:
        return _TextField(Target(self._kind, name), ValueKind.TEXT, _text)

    def _moment(self, name: str) -> _Field[datetime]:
        return _Field(Target(self._kind, name), ValueKind.DATETIME, _datetime)

    def prop(self, name: str) -> PropertyTarget:
        """A typed property of the row."""
        try:
            validate_property_name(name)
        except ConfigurationError as error:
            raise QueryError(str(error)) from None
        return PropertyTarget(Target(self._property_kind, name), None, None)


class _ColonyTargets(RowTargets):
    """A colony: ``colony.id``, ``.name``, ``.host``, ``.status``, ``.started_at``,
    ``.heartbeat``, ``colony.prop(name)`` (the properties it was started with) and
    ``colony.daemon(...)``."""

    __slots__ = ()
    _kind = TargetKind.COLONY
    _property_kind = TargetKind.COLONY_PROPERTY

    @property
    def id(self) -> _TextField:
        return self._text("id")

    @property
    def name(self) -> _TextField:
        return self._text("name")

    @property
    def host(self) -> _TextField:
        return self._text("host")

    @property
    def status(self) -> _TextField:
        return _TextField(Target(TargetKind.COLONY, "status"), ValueKind.TEXT, _status)

    @property
    def started_at(self) -> _Field[datetime]:
        return self._moment("started_at")

    @property
    def heartbeat(self) -> _Field[datetime]:
        return self._moment("heartbeat")

    def daemon(self, *conditions: Condition) -> Condition:
        """Some daemon of the colony satisfies all ``conditions`` (built from :data:`daemon`)."""
        inner = where(*conditions)
        if target_kinds(inner) - {TargetKind.DAEMON}:
            raise QueryError("colony.daemon(...) takes conditions on daemon.name and daemon.status")
        return AnyDaemon(inner)

    def __repr__(self) -> str:
        return "colony"


#: a colony, for colony searches
colony = _ColonyTargets()
#: a daemon of a colony, inside colony.daemon(...)
daemon = _DaemonTargets()


def check_colony_condition(condition: Condition | None) -> Condition | None:
    if condition is not None and target_kinds(condition) - _COLONY_KINDS:
        raise QueryError(
            "a colony search takes conditions on colony.* and colony.daemon(...) (from hivemind_jobs.query); "
            "job conditions go to jobs.search"
        )
    return condition


# ----------------------------------------------------------------------------- evaluation

_OPS: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: lambda a, b: a == b,
    Op.NE: lambda a, b: a != b,
    Op.LT: lambda a, b: a < b,
    Op.LE: lambda a, b: a <= b,
    Op.GT: lambda a, b: a > b,
    Op.GE: lambda a, b: a >= b,
}


def _kind_of(value: object) -> ValueKind | None:
    if isinstance(value, bool):
        return ValueKind.BOOL
    if isinstance(value, int):
        return ValueKind.INT
    if isinstance(value, float):
        return ValueKind.FLOAT
    if isinstance(value, str):
        return ValueKind.TEXT
    if isinstance(value, datetime):
        return ValueKind.DATETIME
    return None


def _like(pattern: str, text: str) -> bool:
    regex = "".join(".*" if part is None else re.escape(part) for part in like_parts(pattern))
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _holds(node: Compare, present: bool, value: object) -> bool:
    if node.op is Op.EXISTS:
        return present
    if node.op is Op.MISSING:
        return not present
    if not present or _kind_of(value) is not node.kind:
        return False
    if node.op is Op.IN:
        return value in node.value
    if node.op is Op.LIKE:
        return isinstance(value, str) and _like(node.value, value)
    return _OPS[node.op](value, node.value)


_PROPERTY_KINDS = (TargetKind.COLONY_PROPERTY, TargetKind.RECURRING_PROPERTY)


def evaluate(node: Condition, fields: Mapping[str, Any], properties: Mapping[str, Any], nested: list[Any]) -> bool:
    """Whether a row (its ``fields``, ``properties`` and ``nested`` daemon rows) satisfies ``node``:
    the in-process evaluation of colony and recurring-job conditions."""
    if isinstance(node, All):
        return all(evaluate(item, fields, properties, nested) for item in node.items)
    if isinstance(node, AnyOf):
        return any(evaluate(item, fields, properties, nested) for item in node.items)
    if isinstance(node, Not):
        return not evaluate(node.item, fields, properties, nested)
    if isinstance(node, AnyDaemon):
        return any(evaluate(node.condition, item, {}, []) for item in nested if isinstance(item, Mapping))
    assert isinstance(node, Compare)
    if node.target.kind in _PROPERTY_KINDS:
        return _holds(node, node.target.name in properties, properties.get(node.target.name))
    return _holds(node, node.target.name in fields, fields.get(node.target.name))


def colony_matches(
    node: Condition, fields: Mapping[str, Any], properties: Mapping[str, Any], daemons: list[Any]
) -> bool:
    """Whether a colony (its ``fields``, ``properties`` and ``daemons`` as stored) satisfies ``node``."""
    return evaluate(node, fields, properties, daemons)


def parse_colony_order(order_by: str) -> tuple[str, bool]:
    if not isinstance(order_by, str):
        raise QueryError(f"order_by takes a string such as '-heartbeat', got {order_by!r}")
    descending = order_by.startswith("-")
    key = order_by.removeprefix("-")
    key = {"started": "started_at"}.get(key, key)
    if key not in COLONY_ORDER_KEYS:
        raise QueryError(f"cannot order colonies by {order_by!r}; use one of {', '.join(COLONY_ORDER_KEYS)}")
    return key, descending
